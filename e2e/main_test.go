// Package e2e tests the replicator against a real kube-apiserver and etcd
// started on loopback. `make test` builds them (tools/build.sh) and sets
// REPLICATOR_TOOLS_BIN; under CI=true a missing control plane is a failure.
//
// Every test gets its own namespaces and runs its own controller with its own
// annotation prefix, so tests run in parallel without seeing each other's
// objects.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"

	"github.com/kubereplicator/replicator/controlplane"
	"github.com/kubereplicator/replicator/replicate"
)

var (
	cluster   *controlplane.ControlPlane
	admin     kubernetes.Interface
	binary    string // the replicator, built once for the tests that run it as a process
	skipWhy   string
	envSerial atomic.Int64
	// suiteLog collects what every controller of the run logged, at trace
	// level, and the output of every replicator process; secretValues are
	// the Secret data the tests wrote. No value may appear in the log.
	suiteLog     syncBuffer
	secretValues sync.Map
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin := controlplane.BinDirFromEnv()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: REPLICATOR_TOOLS_BIN is not set; under CI=true the end-to-end tests must run (use make test)")
			return 1
		}
		skipWhy = "REPLICATOR_TOOLS_BIN is not set (make test builds the control plane and sets it)"
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "replicator-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	cluster, err = controlplane.Start(ctx, controlplane.Options{BinDir: bin, Dir: filepath.Join(dir, "cluster")})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting control plane:", err)
		return 1
	}
	defer cluster.Stop()
	fmt.Printf("e2e: control plane ready in %s at %s\n", time.Since(start).Round(time.Millisecond), cluster.APIServerURL)
	// The tests' TLS data is not PEM; the API server's warnings about it are
	// noise.
	cluster.Config.WarningHandler = rest.NoWarnings{}
	admin = kubernetes.NewForConfigOrDie(cluster.Config)

	binary = filepath.Join(dir, "replicator")
	build := exec.Command("go", "build", "-race", "-o", binary, "..")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the replicator:", err)
		return 1
	}
	code := m.Run()
	if code == 0 {
		code = checkNoSecretData()
	}
	return code
}

// checkNoSecretData fails the run if any Secret value the tests wrote (of six
// characters or more, shorter ones occur by chance) is in suiteLog.
func checkNoSecretData() int {
	log := suiteLog.String()
	found, values := 0, 0
	secretValues.Range(func(k, _ any) bool {
		values++
		if v := k.(string); len(v) >= 6 && strings.Contains(log, v) {
			fmt.Fprintf(os.Stderr, "e2e: Secret data %q appears in the logs of the run\n", v)
			found++
		}
		return true
	})
	fmt.Printf("e2e: %d bytes of controller logs (trace level) checked for %d Secret values\n", len(log), values)
	if found > 0 {
		return 1
	}
	return 0
}

// env is one test's world: a prefix, namespaces and (optionally) a controller.
type env struct {
	t      *testing.T
	ctx    context.Context
	id     int64
	prefix string
	a      replicate.Annotations
	// writes counts the mutating requests the controller sent (events
	// excluded); recent keeps the last ones for failure messages.
	writes atomic.Int64
	mu     sync.Mutex
	recent []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if skipWhy != "" {
		t.Skip(skipWhy)
	}
	t.Parallel()
	id := envSerial.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	prefix := fmt.Sprintf("e%d.replicator.test", id)
	return &env{t: t, ctx: ctx, id: id, prefix: prefix, a: replicate.NewAnnotations(prefix)}
}

// countingConfig returns a copy of the admin config whose mutating requests
// are counted in e.writes.
func (e *env) countingConfig() *rest.Config {
	cfg := rest.CopyConfig(cluster.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet || strings.Contains(r.URL.Path, "/events") {
				return rt.RoundTrip(r)
			}
			e.writes.Add(1)
			resp, err := rt.RoundTrip(r)
			status := "error"
			if resp != nil {
				status = resp.Status
			}
			e.mu.Lock()
			e.recent = append(e.recent, time.Now().Format("15:04:05.000")+" "+r.Method+" "+r.URL.Path+" -> "+status)
			if len(e.recent) > 20 {
				e.recent = e.recent[1:]
			}
			e.mu.Unlock()
			return resp, err
		})
	})
	return cfg
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// start runs the replicator in process, wired as the binary wires it, until
// the returned stop is called or the test ends. It returns once the caches
// have synced.
func (e *env) start(configure ...func(*replicate.Options)) (stop func()) {
	e.t.Helper()
	client := kubernetes.NewForConfigOrDie(e.countingConfig())
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: admin.CoreV1().Events("")})
	log := logrus.New()
	log.SetLevel(logrus.TraceLevel)
	log.SetOutput(io.MultiWriter(testWriter{e.t}, &suiteLog))
	opts := replicate.Options{
		Annotations: e.a,
		// Every namespace may push every kind: the tests of the push
		// policy set their own.
		Push:     replicate.PushPolicy{From: mustPatterns(e.t, ".*"), RBACFrom: mustPatterns(e.t, ".*")},
		Workers:  2,
		Recorder: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "replicator-e2e"}),
		Log:      log.WithField("env", e.id),
	}
	for _, f := range configure {
		f(&opts)
	}
	// The wiring the binary uses, every kind on as by default.
	rep, err := replicate.NewReplicator(replicate.Setup{
		Client:  client,
		Kinds:   []replicate.Kind{replicate.Secrets(), replicate.ConfigMaps(), replicate.Roles(), replicate.RoleBindings(), replicate.ServiceAccounts()},
		Options: opts,
	})
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(e.ctx)
	informersStopped := rep.Start(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = rep.Run(ctx)
	}()
	for name, ready := range rep.ReadyChecks() {
		e.eventually(30*time.Second, name+" ready", ready)
	}
	var stopped atomic.Bool
	stop = func() {
		if stopped.Swap(true) {
			return
		}
		cancel()
		<-done
		informersStopped()
		broadcaster.Shutdown()
	}
	e.t.Cleanup(stop)
	return stop
}

// mustPatterns parses a pattern list the test knows to be valid.
func mustPatterns(t *testing.T, list string) replicate.Patterns {
	t.Helper()
	p, errs := replicate.ParsePatterns(list)
	require.Empty(t, errs)
	return p
}

// testWriter sends log lines to the test log, and nowhere once it ended.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ns creates a namespace named for this env and returns its name.
func (e *env) ns(suffix string, labels map[string]string) string {
	e.t.Helper()
	name := fmt.Sprintf("e%d-%s", e.id, suffix)
	_, err := admin.CoreV1().Namespaces().Create(e.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return name
}

// eventually polls check until it returns nil or timeout passes.
func (e *env) eventually(timeout time.Duration, what string, check func() error) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = check(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const wait = 15 * time.Second

func (e *env) create(s *corev1.Secret) *corev1.Secret {
	e.t.Helper()
	return e.createIn(admin, s)
}

// createIn creates s in the cluster of client.
func (e *env) createIn(client kubernetes.Interface, s *corev1.Secret) *corev1.Secret {
	e.t.Helper()
	got, err := client.CoreV1().Secrets(s.Namespace).Create(e.ctx, s, metav1.CreateOptions{})
	require.NoError(e.t, err)
	return got
}

func (e *env) get(namespace, name string) (*corev1.Secret, error) {
	return admin.CoreV1().Secrets(namespace).Get(e.ctx, name, metav1.GetOptions{})
}

func (e *env) mustGet(namespace, name string) *corev1.Secret {
	e.t.Helper()
	s, err := e.get(namespace, name)
	require.NoError(e.t, err)
	return s
}

// modify changes a Secret with retries on conflict.
func (e *env) modify(namespace, name string, change func(*corev1.Secret)) {
	e.t.Helper()
	e.modifyIn(admin, namespace, name, change)
}

// modifyIn is modify in the cluster of client.
func (e *env) modifyIn(client kubernetes.Interface, namespace, name string, change func(*corev1.Secret)) {
	e.t.Helper()
	e.eventually(wait, "modify "+namespace+"/"+name, func() error {
		s, err := client.CoreV1().Secrets(namespace).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		change(s)
		_, err = client.CoreV1().Secrets(namespace).Update(e.ctx, s, metav1.UpdateOptions{})
		return err
	})
}

func (e *env) delete(namespace, name string) {
	e.t.Helper()
	err := admin.CoreV1().Secrets(namespace).Delete(e.ctx, name, metav1.DeleteOptions{})
	if !apierrors.IsNotFound(err) {
		require.NoError(e.t, err)
	}
}

// waitData waits until the Secret holds exactly want.
func (e *env) waitData(namespace, name string, want map[string]string) *corev1.Secret {
	e.t.Helper()
	var got *corev1.Secret
	e.eventually(wait, "data of "+namespace+"/"+name, func() error {
		s, err := e.get(namespace, name)
		if err != nil {
			return err
		}
		if !sameData(s.Data, want) {
			return fmt.Errorf("data is %v, want %v", keysOf(s.Data), want)
		}
		got = s
		return nil
	})
	return got
}

func (e *env) waitGone(namespace, name string) {
	e.t.Helper()
	e.eventually(wait, namespace+"/"+name+" deleted", func() error {
		_, err := e.get(namespace, name)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err %v)", err)
	})
}

func sameData(got map[string][]byte, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok || string(g) != v {
			return false
		}
	}
	return true
}

// keysOf shows a Secret's data for failure messages: key names and sizes,
// never values.
func keysOf(d map[string][]byte) map[string]int {
	out := map[string]int{}
	for k, v := range d {
		out[k] = len(v)
	}
	return out
}

// waitEvent waits for an Event with reason on the object and returns its
// message.
func (e *env) waitEvent(namespace, name, reason string) string {
	e.t.Helper()
	var msg string
	e.eventually(wait, "event "+reason+" on "+namespace+"/"+name, func() error {
		list, err := admin.CoreV1().Events(namespace).List(e.ctx, metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": name, "reason": reason}.String(),
		})
		if err != nil {
			return err
		}
		if len(list.Items) == 0 {
			return fmt.Errorf("no such event yet")
		}
		msg = list.Items[0].Message
		return nil
	})
	return msg
}

// hasEvent reports whether an Event with reason exists on the object now.
func (e *env) hasEvent(namespace, name, reason string) bool {
	list, err := admin.CoreV1().Events(namespace).List(e.ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": name, "reason": reason}.String(),
	})
	require.NoError(e.t, err)
	return len(list.Items) > 0
}

// noWrites waits settle for the controller's own writes to come back as
// events, then asserts that it writes nothing for d (no hot loop).
func (e *env) noWrites(settle, d time.Duration, why string) {
	e.t.Helper()
	time.Sleep(settle)
	before := e.writes.Load()
	time.Sleep(d)
	if after := e.writes.Load(); after != before {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.t.Fatalf("%s: %d writes in %s; the last requests:\n%s", why, after-before, d, strings.Join(e.recent, "\n"))
	}
}

// stable asserts that the Secret's resourceVersion does not move for d.
func (e *env) stable(d time.Duration, namespace, name string) {
	e.t.Helper()
	before := e.mustGet(namespace, name).ResourceVersion
	time.Sleep(d)
	require.Equal(e.t, before, e.mustGet(namespace, name).ResourceVersion, "%s/%s was written", namespace, name)
}

func secret(namespace, name string, typ corev1.SecretType, data map[string]string, annotations map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Type:       typ,
		Data:       map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
		secretValues.Store(v, true)
	}
	return s
}

// allow returns source annotations letting the namespaces pull.
func (e *env) allow(namespaces string) map[string]string {
	return map[string]string{e.a.ReplicationAllowed: "true", e.a.ReplicationAllowedNS: namespaces}
}

// tlsPlaceholder is the empty Secret cert-manager's documentation tells
// consumers to create.
func (e *env) tlsPlaceholder(namespace, name, from string) *corev1.Secret {
	return secret(namespace, name, corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""},
		map[string]string{e.a.ReplicateFrom: from})
}

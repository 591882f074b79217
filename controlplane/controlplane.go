// Package controlplane runs a real etcd and kube-apiserver on loopback, for
// end-to-end tests, benchmarks and `make run`. There is no controller manager:
// a deleted namespace stays Terminating, which the tests rely on.
package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options configure Start.
type Options struct {
	// BinDir holds etcd and kube-apiserver (tools/build.sh prints it).
	BinDir string
	// Dir holds data, certificates, logs and the kubeconfig; it is created
	// if missing, and etcd data found there is reused.
	Dir string
	// Log receives the processes' output; nil means etcd.log and
	// kube-apiserver.log in Dir.
	Log io.Writer
	// APIServerArgs are further kube-apiserver flags, after the defaults
	// (an audit log, say).
	APIServerArgs []string
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	Dir            string
	KubeconfigPath string
	// Config is an admin configuration (client certificate in
	// system:masters).
	Config       *rest.Config
	APIServerURL string

	opts                            Options
	pki                             *pki
	etcdClient, etcdPeer, apiserver int
	mu                              sync.Mutex
	procs                           map[string]*process
}

type process struct {
	cmd     *exec.Cmd
	done    chan struct{}
	logPath string
}

// BinDirFromEnv returns the tools folder set by the Makefile.
func BinDirFromEnv() string { return os.Getenv("REPLICATOR_TOOLS_BIN") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts etcd and kube-apiserver and returns once the API server is
// ready.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	c := &ControlPlane{Dir: dir, opts: opts, procs: map[string]*process{}}
	for _, p := range []*int{&c.etcdClient, &c.etcdPeer, &c.apiserver} {
		if *p, err = freePort(); err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
	}
	if c.pki, err = generatePKI(filepath.Join(dir, "pki")); err != nil {
		return nil, fmt.Errorf("creating certificates: %w", err)
	}
	c.APIServerURL = "https://127.0.0.1:" + strconv.Itoa(c.apiserver)
	c.Config = &rest.Config{
		Host:            c.APIServerURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.pki.caPEM, CertData: c.pki.adminCertPEM, KeyData: c.pki.adminKeyPEM},
		QPS:             1000,
		Burst:           2000,
	}
	c.KubeconfigPath = filepath.Join(dir, "kubeconfig")
	if err := c.WriteKubeconfig(c.KubeconfigPath, c.Config); err != nil {
		return nil, err
	}
	if err := c.StartEtcd(ctx); err != nil {
		return nil, err
	}
	if err := c.StartAPIServer(ctx); err != nil {
		_ = c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *ControlPlane) start(name string, args ...string) (*process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.procs[name]; p != nil {
		select {
		case <-p.done:
		default:
			return nil, fmt.Errorf("%s is already running", name)
		}
	}
	cmd := exec.Command(filepath.Join(c.opts.BinDir, name), args...)
	p := &process{cmd: cmd, done: make(chan struct{}), logPath: filepath.Join(c.Dir, name+".log")}
	if c.opts.Log != nil {
		cmd.Stdout, cmd.Stderr = c.opts.Log, c.opts.Log
	} else {
		f, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	// Own process group, and killed with us: no processes outlive a test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	c.procs[name] = p
	return p, nil
}

// Pids returns the process IDs of the running etcd and kube-apiserver, by
// name (to measure what they use).
func (c *ControlPlane) Pids() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for name, p := range c.procs {
		select {
		case <-p.done:
		default:
			out[name] = p.cmd.Process.Pid
		}
	}
	return out
}

func (c *ControlPlane) stop(name string) error {
	c.mu.Lock()
	p := c.procs[name]
	c.mu.Unlock()
	if p == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}

// StartEtcd starts etcd (again) on the same ports and data.
func (c *ControlPlane) StartEtcd(ctx context.Context) error {
	client := "http://127.0.0.1:" + strconv.Itoa(c.etcdClient)
	peer := "http://127.0.0.1:" + strconv.Itoa(c.etcdPeer)
	p, err := c.start("etcd",
		"--name=default",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=default="+peer,
		// Test data is disposable: skip fsync, the slowest part of a write.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	return c.waitHTTP(ctx, p, "etcd", func() error {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(c.etcdClient), time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// EtcdURL is etcd's client URL (plain HTTP on loopback).
func (c *ControlPlane) EtcdURL() string { return "http://127.0.0.1:" + strconv.Itoa(c.etcdClient) }

// StopEtcd stops etcd.
func (c *ControlPlane) StopEtcd() error { return c.stop("etcd") }

// StartAPIServer starts kube-apiserver (again) with the same port and flags.
func (c *ControlPlane) StartAPIServer(ctx context.Context) error {
	p, err := c.start("kube-apiserver", append([]string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(c.etcdClient),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.apiserver),
		"--tls-cert-file=" + c.pki.serverCert,
		"--tls-private-key-file=" + c.pki.serverKey,
		"--client-ca-file=" + c.pki.caCert,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + c.pki.saPub,
		"--service-account-signing-key-file=" + c.pki.saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		// No pods run here: skip what only matters for them.
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
	}, c.opts.APIServerArgs...)...)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return err
	}
	return c.waitHTTP(ctx, p, "kube-apiserver", func() error {
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").Timeout(2 * time.Second).DoRaw(ctx)
		if err != nil {
			return fmt.Errorf("%w: %s", err, bytes.TrimSpace(body))
		}
		return nil
	})
}

// RenewServingCertificate gives the API server a serving certificate from a
// new CA, as a CA rotation does, and restarts it with it (it is stopped if
// running, and started). Config trusts the new CA from then on; clients
// made before do not.
func (c *ControlPlane) RenewServingCertificate(ctx context.Context) error {
	if err := c.StopAPIServer(); err != nil {
		return err
	}
	ca, err := c.pki.renewServing()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.Config.CAData = ca
	c.mu.Unlock()
	if err := c.WriteKubeconfig(c.KubeconfigPath, c.Config); err != nil {
		return err
	}
	return c.StartAPIServer(ctx)
}

// ServingCA is the CA the API server's serving certificate is from, as PEM.
func (c *ControlPlane) ServingCA() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pki.servingCAPEM
}

// StopAPIServer stops kube-apiserver.
func (c *ControlPlane) StopAPIServer() error { return c.stop("kube-apiserver") }

// waitHTTP polls ready until it succeeds, the process exits or 60 s pass.
func (c *ControlPlane) waitHTTP(ctx context.Context, p *process, name string, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready: %s", name, c.logTail(p))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %v: %s", name, last, c.logTail(p))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *ControlPlane) logTail(p *process) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log)"
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "\n" + strings.Join(lines, "\n")
}

// Stop stops both processes; it may be called more than once.
func (c *ControlPlane) Stop() error {
	return errors.Join(c.StopAPIServer(), c.StopEtcd())
}

// ServiceAccountConfig returns a configuration authenticated as an existing
// ServiceAccount through a token from the TokenRequest API.
func (c *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	client, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return nil, err
	}
	expiry := int64(3600)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for %s/%s: %w", namespace, name, err)
	}
	return &rest.Config{
		Host:            c.APIServerURL,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.ServingCA()},
		QPS:             c.Config.QPS,
		Burst:           c.Config.Burst,
	}, nil
}

// WriteKubeconfig writes a kubeconfig file for cfg (from this package).
func (c *ControlPlane) WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "user"}
	kc.CurrentContext = "local"
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return clientcmd.WriteToFile(*kc, path)
}

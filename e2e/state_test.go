package e2e

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubereplicator/replicator/replicate"
)

// objectStates reads replicator_objects{kind="Secret"} from reg, by mode
// and state.
func objectStates(t *testing.T, reg *prometheus.Registry) map[string]int {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]int{}
	for _, f := range families {
		if f.GetName() != "replicator_objects" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["kind"] == "Secret" && m.GetGauge().GetValue() > 0 {
				out[labels["mode"]+"/"+labels["state"]+"/"+labels["reason"]] += int(m.GetGauge().GetValue())
			}
		}
	}
	return out
}

// TestObjectStatesMatchTheClusterAfterChurn churns sources, placeholders and
// namespaces, then compares replicator_objects with what the cluster holds:
// placeholders filled and emptied, replicas in sync, conflicts; and again
// after a restart.
func TestObjectStatesMatchTheClusterAfterChurn(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	src := e.ns("src", nil)
	// A label of this test's own: other tests label namespaces too.
	label := fmt.Sprintf("push-%d", e.id)
	var apps []string
	for i := range 6 {
		apps = append(apps, e.ns(fmt.Sprintf("app%d", i), map[string]string{label: "yes"}))
	}
	// An object no replicator made, in the way of s0 in app5 (made before
	// the sources, or s0 would push there first).
	e.create(secret(apps[5], "s0", corev1.SecretTypeOpaque, map[string]string{"k": "STATE-TEST-FOREIGN-VALUE"}, nil))
	// Sources 0..3 allow apps 0..2 and push into the labelled namespaces.
	for i := range 4 {
		e.create(secret(src, fmt.Sprintf("s%d", i), corev1.SecretTypeOpaque, map[string]string{"k": fmt.Sprintf("v%d", i)},
			with(e.allow(apps[0]+","+apps[1]+","+apps[2]), e.a.ReplicateToMatching, label+"=yes")))
	}
	// Placeholders in every app for every source, and some for a missing one.
	for _, app := range apps {
		for i := range 4 {
			e.create(secret(app, fmt.Sprintf("p%d", i), corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: fmt.Sprintf("%s/s%d", src, i)}))
		}
		e.create(secret(app, "p-missing", corev1.SecretTypeOpaque, nil, map[string]string{e.a.ReplicateFrom: src + "/missing"}))
	}
	// Churn: renewals, a source deleted, placeholders deleted, a
	// namespace relabelled out of the push, one allowed later.
	rng := rand.New(rand.NewPCG(1, uint64(e.id)))
	for round := range 20 {
		i := rng.IntN(4)
		e.modify(src, fmt.Sprintf("s%d", i), func(s *corev1.Secret) { s.Data["k"] = []byte(fmt.Sprintf("v%d-%d", i, round)) })
	}
	e.delete(src, "s3")
	e.delete(apps[4], "p1")
	e.delete(apps[0], "p2")
	e.labelNamespace(apps[3], nil)
	e.modify(src, "s1", func(s *corev1.Secret) { s.Annotations[e.a.ReplicationAllowedNS] += "," + apps[4] })

	settle := func(what string, reg *prometheus.Registry) {
		e.eventually(30*time.Second, what, func() error {
			want := e.statesInCluster(src, apps, label)
			if got := objectStates(t, reg); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("replicator_objects %v, the cluster %v", got, want)
			}
			return nil
		})
	}
	settle("the gauge matches the cluster", r.reg)
	t.Logf("states: %v", objectStates(t, r.reg))

	// A restart rebuilds the same counts.
	r.stop()
	r = e.start()
	settle("the gauge matches the cluster after a restart", r.reg)
}

// statesInCluster counts, from the objects in the cluster, what
// replicator_objects{kind="Secret"} should say for this test's sources and
// namespaces.
func (e *env) statesInCluster(src string, apps []string, label string) map[string]int {
	e.t.Helper()
	sources := map[string]*corev1.Secret{}
	list, err := admin.CoreV1().Secrets(src).List(e.ctx, metav1.ListOptions{})
	require.NoError(e.t, err)
	for i := range list.Items {
		sources[src+"/"+list.Items[i].Name] = &list.Items[i]
	}
	want := map[string]int{}
	for _, app := range apps {
		ns, err := admin.CoreV1().Namespaces().Get(e.ctx, app, metav1.GetOptions{})
		require.NoError(e.t, err)
		secrets, err := admin.CoreV1().Secrets(app).List(e.ctx, metav1.ListOptions{})
		require.NoError(e.t, err)
		byName := map[string]*corev1.Secret{}
		for i := range secrets.Items {
			s := &secrets.Items[i]
			byName[s.Name] = s
			from, ok := s.Annotations[e.a.ReplicateFrom]
			if !ok {
				continue
			}
			source := sources[from]
			switch {
			case source == nil:
				want["pull/refused/"+replicate.ReasonSourceNotFound]++
			case len(s.Data) > 0 && string(s.Data["k"]) == string(source.Data["k"]):
				want["pull/filled/"]++
			default:
				want["pull/refused/"+replicate.ReasonDenied]++
			}
		}
		// Push: every source targets the labelled namespaces.
		if ns.Labels[label] != "yes" {
			continue
		}
		for key, source := range sources {
			r := byName[source.Name]
			switch {
			case r != nil && r.Annotations[e.a.ReplicatedFrom] == key && string(r.Data["k"]) == string(source.Data["k"]):
				want["push/filled/"]++
			case r != nil && r.Annotations[e.a.ReplicatedFrom] == "":
				want["push/conflict/"]++
			}
		}
	}
	return want
}

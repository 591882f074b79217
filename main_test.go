package main

import (
	"context"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kubereplicator/replicator/replicate"
)

func TestSoftMemoryLimit(t *testing.T) {
	t.Cleanup(func() { debug.SetMemoryLimit(math.MaxInt64) })
	tests := map[string]struct {
		content   string // "" for no file
		gomemlimt string
		want      int64
	}{
		"a container limit gives 90% of it":     {content: "268435456\n", want: 241591905},
		"no limit (max) sets nothing":           {content: "max\n"},
		"no cgroup file sets nothing":           {},
		"GOMEMLIMIT set by the user wins":       {content: "268435456\n", gomemlimt: "100MiB"},
		"an unreadable number sets nothing":     {content: "lots\n"},
		"a zero limit is not taken for a limit": {content: "0\n"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tt.gomemlimt)
			path := filepath.Join(t.TempDir(), "memory.max")
			if tt.content != "" {
				require.NoError(t, os.WriteFile(path, []byte(tt.content), 0o644))
			}
			debug.SetMemoryLimit(math.MaxInt64)
			got := softMemoryLimit(path)
			assert.Equal(t, tt.want, got)
			if tt.want > 0 {
				assert.Equal(t, tt.want, debug.SetMemoryLimit(-1), "the runtime's limit")
			} else {
				assert.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1), "left alone")
			}
		})
	}
}

func TestGCSetting(t *testing.T) {
	t.Setenv("GOGC", "")
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	tightenGC()
	assert.Equal(t, gcPercent, debug.SetGCPercent(100), "tightened")

	t.Setenv("GOGC", "200")
	debug.SetGCPercent(200)
	tightenGC()
	assert.Equal(t, 200, debug.SetGCPercent(200), "GOGC set by the user is left alone")
}

func TestKindFlags(t *testing.T) {
	names := func(args ...string) []string {
		c, err := parseFlags(args, io.Discard)
		require.NoError(t, err)
		var out []string
		for _, k := range c.kinds() {
			out = append(out, k.Name())
		}
		return out
	}
	assert.Equal(t, []string{"Secret", "ConfigMap", "Role", "RoleBinding", "ServiceAccount"}, names(), "all on by default")
	assert.Equal(t, []string{"Secret", "Role", "ServiceAccount"}, names("--replicate-configmaps=false", "--replicate-role-bindings=false"))
	assert.Empty(t, names("--replicate-secrets=false", "--replicate-configmaps=false", "--replicate-roles=false", "--replicate-role-bindings=false", "--replicate-service-accounts=false"))
}

func TestFlagHelpNamesTheKindsOfTheRegistry(t *testing.T) {
	fs := flag.NewFlagSet("replicator", flag.ContinueOnError)
	var logLevel string
	(&config{}).define(fs, &logLevel)
	newClusterFlags(fs)
	for name, want := range map[string]string{
		"replicate-secrets":          "replicate Secrets",
		"replicate-configmaps":       "replicate ConfigMaps",
		"replicate-roles":            "replicate Roles",
		"replicate-role-bindings":    "replicate RoleBindings",
		"replicate-service-accounts": "replicate ServiceAccounts",
		"push-from-namespaces":       "comma-separated regular expressions of namespaces whose Secrets, ConfigMaps and ServiceAccounts may push (replicate-to, replicate-to-matching); empty: none",
		"push-rbac-from-namespaces":  "comma-separated regular expressions of namespaces whose Roles and RoleBindings may push; empty: none (they grant rights)",
		"source-cluster":             "NAME=KUBECONFIG: placeholders here may pull Secrets from that cluster as NAME:<namespace>/<name> (repeatable)",
		"dialects":                   "comma-separated annotation dialects read: replicator (always), reflector (reflector.v1.k8s.emberstack.com/ on Secrets and ConfigMaps), kubed (kubed.appscode.com/sync on Secrets and ConfigMaps)",
	} {
		f := fs.Lookup(name)
		require.NotNil(t, f, name)
		assert.Equal(t, want, f.Usage, name)
	}
	_, err := parseFlags([]string{"--cluster-name", "spoke", "--source-cluster", "hub=/k", "--source-cluster-namespaces", "hub=certs", "--replicate-secrets=false"}, io.Discard)
	assert.EqualError(t, err, "-source-cluster needs -replicate-secrets: cross-cluster pull serves Secrets")
}

func TestSourceClusterFlags(t *testing.T) {
	c, err := parseFlags([]string{"--cluster-name", "spoke-1",
		"--source-cluster", "hub=/etc/replicator/clusters/hub/kubeconfig", "--source-cluster-namespaces", "hub=certs, shared",
		"--source-cluster", "edge=/tmp/edge", "--source-cluster-namespaces", "edge=certs"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "spoke-1", c.clusterName)
	assert.Equal(t, []sourceCluster{
		{name: "hub", kubeconfig: "/etc/replicator/clusters/hub/kubeconfig", namespaces: []string{"certs", "shared"}},
		{name: "edge", kubeconfig: "/tmp/edge", namespaces: []string{"certs"}},
	}, c.sourceClusters, "in the order given")

	for why, args := range map[string][]string{
		"a source cluster without a cluster name":        {"--source-cluster", "hub=/k", "--source-cluster-namespaces", "hub=certs"},
		"a source cluster without namespaces":            {"--cluster-name", "spoke", "--source-cluster", "hub=/k"},
		"namespaces of a cluster that is not configured": {"--cluster-name", "spoke", "--source-cluster", "hub=/k", "--source-cluster-namespaces", "hbu=certs"},
		"a source cluster named like this cluster":       {"--cluster-name", "hub", "--source-cluster", "hub=/k", "--source-cluster-namespaces", "hub=certs"},
		"a source cluster given twice":                   {"--cluster-name", "spoke", "--source-cluster", "hub=/k", "--source-cluster", "hub=/j", "--source-cluster-namespaces", "hub=certs"},
		"a source cluster without a kubeconfig":          {"--cluster-name", "spoke", "--source-cluster", "hub", "--source-cluster-namespaces", "hub=certs"},
		"a cluster name that is not a DNS label":         {"--cluster-name", "Spoke_1"},
		"a namespace that is not a DNS label":            {"--cluster-name", "spoke", "--source-cluster", "hub=/k", "--source-cluster-namespaces", "hub=Certs"},
		"source clusters with Secrets switched off":      {"--cluster-name", "spoke", "--source-cluster", "hub=/k", "--source-cluster-namespaces", "hub=certs", "--replicate-secrets=false"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.Error(t, err, why)
	}
}

func TestDialectFlag(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	require.NoError(t, err)
	assert.False(t, c.dialects.Reads(replicate.DialectKubed), "kubernetes-replicator's annotations only, by default")
	assert.False(t, c.dialects.Reads(replicate.DialectReflector), "kubernetes-replicator's annotations only, by default")
	c, err = parseFlags([]string{"--dialects=replicator, kubed"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, c.dialects.Reads(replicate.DialectKubed))
	assert.False(t, c.dialects.Reads(replicate.DialectReflector))
	c, err = parseFlags([]string{"--dialects=replicator,reflector,kubed"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, c.dialects.Reads(replicate.DialectKubed))
	assert.True(t, c.dialects.Reads(replicate.DialectReflector))
	assert.Equal(t, c.dialects, c.options().Annotations.Dialects, "the dialects read, given once to the replicator's annotations")
	for _, bad := range []string{"emberstack", "replicator,kubectl", "reflector;kubed"} {
		_, err := parseFlags([]string{"--dialects=" + bad}, io.Discard)
		assert.Error(t, err, bad)
	}
}

func TestDryRunHoldsNoLease(t *testing.T) {
	c, err := parseFlags([]string{"--dry-run"}, io.Discard)
	require.NoError(t, err)
	assert.True(t, c.dryRun)
	assert.False(t, c.leaderElect, "a Lease is a write")
}

func TestPushPolicyFlags(t *testing.T) {
	tests := map[string]struct {
		args                         []string
		source                       string
		rbac                         bool
		target                       string
		wantSource, wantTarget, fail bool
	}{
		"by default any namespace may push Secrets and ConfigMaps": {
			source: "team-a", target: "team-b", wantSource: true, wantTarget: true,
		},
		"by default no namespace may push Roles and RoleBindings": {
			source: "team-a", rbac: true, target: "team-b", wantTarget: true,
		},
		"by default no system namespace receives push replicas": {
			source: "team-a", target: "kube-system", wantSource: true,
		},
		"an empty list lets no namespace push": {
			args: []string{"--push-from-namespaces="}, source: "team-a", target: "team-b", wantTarget: true,
		},
		"a list names the namespaces that may push, whole names only": {
			args: []string{"--push-from-namespaces=cert-manager"}, source: "cert-manager-evil", target: "team-b", wantTarget: true,
		},
		"the RBAC list opens Roles and RoleBindings from its namespaces": {
			args: []string{"--push-rbac-from-namespaces=platform"}, source: "platform", rbac: true, target: "team-b", wantSource: true, wantTarget: true,
		},
		"the general list never opens Roles and RoleBindings": {
			args: []string{"--push-from-namespaces=platform"}, source: "platform", rbac: true, target: "team-b", wantTarget: true,
		},
		"a system namespace named by the operator receives replicas from the namespaces named to push": {
			args:   []string{"--push-to-system-namespaces=kube-public", "--push-from-namespaces=team-a,team-.*"},
			source: "team-a", target: "kube-public", wantSource: true, wantTarget: true,
		},
		"a system namespace named by the operator stays closed to namespaces only a pattern lets push": {
			args:   []string{"--push-to-system-namespaces=kube-public", "--push-from-namespaces=team-a,team-.*"},
			source: "team-b", target: "kube-public", wantSource: true,
		},
		"a system namespace named by the operator stays closed when every namespace may push": {
			args: []string{"--push-to-system-namespaces=kube-public"}, source: "team-a", target: "kube-public", wantSource: true,
		},
		"an invalid pattern is refused at start": {
			args: []string{"--push-rbac-from-namespaces=plat(form"}, fail: true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := parseFlags(tt.args, io.Discard)
			if tt.fail {
				assert.ErrorContains(t, err, "push-rbac-from-namespaces")
				return
			}
			require.NoError(t, err)
			ok, _ := c.push.AllowsSource(tt.source, tt.rbac)
			assert.Equal(t, tt.wantSource, ok, "source")
			assert.Equal(t, tt.wantTarget, c.push.AllowsTarget(tt.source, tt.target, tt.rbac), "target")
		})
	}
}

func TestMemoryIsReleasedAfterABurstOfWork(t *testing.T) {
	type state struct {
		processed uint64
		idle      bool
	}
	// What each check sees, and whether it releases.
	steps := []struct {
		state
		release bool
	}{
		{state{0, true}, false},      // nothing done yet
		{state{600, false}, false},   // busy
		{state{1200, false}, false},  // still busy
		{state{1500, true}, true},    // done: a burst of 1500
		{state{1500, true}, false},   // nothing since
		{state{1900, true}, false},   // a little work: not worth a collection
		{state{2600, true}, true},    // it adds up to a burst
		{state{99999, false}, false}, // busy again
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	i, releases, want := 0, []int{}, []int{}
	for n, s := range steps {
		if s.release {
			want = append(want, n)
		}
	}
	done := make(chan struct{})
	work := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if i == len(steps) {
			return steps[len(steps)-1].processed, false
		}
		s := steps[i]
		i++
		if i == len(steps) {
			close(done)
		}
		return s.processed, s.idle
	}
	go releaseAfterBursts(ctx, work, time.Millisecond, func() {
		mu.Lock()
		defer mu.Unlock()
		releases = append(releases, i-1)
	})
	<-done
	cancel()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, want, releases)
}

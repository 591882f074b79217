package replicate

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// explainCluster is a cluster for explain: a source that allows two
// namespaces and pushes by name and by label, one whose list is long, and
// placeholders in namespaces it allows, does not allow, and the operator
// excludes.
func explainCluster() *fake.Clientset {
	long := strings.Repeat("team-0000,", 99) + "team-last"
	secret := func(namespace, name string, annotations map[string]string) runtime.Object {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations}, Data: map[string][]byte{"k": []byte("v")}}
	}
	return fake.NewClientset(
		namespaceObj("certs", nil), namespaceObj("blog-a", nil), namespaceObj("other", nil), namespaceObj("kube-system", nil),
		namespaceObj("team-a", map[string]string{"tls": "yes"}), namespaceObj("legacy", map[string]string{"tls": "yes"}),
		secret("certs", "wildcard", with(allowed("shop,blog-.*"), ann.ReplicateTo, "kube-system", ann.ReplicateToMatching, "tls=yes")),
		secret("certs", "long", allowed(long)),
		secret("blog-a", "wildcard", replicateFrom("certs/wildcard")),
		secret("other", "wildcard", replicateFrom("certs/wildcard")),
		secret("other", "long", replicateFrom("certs/long")),
		secret("legacy", "tls", replicateFrom("certs/wildcard")),
	)
}

// explain shows every list and selector a gate read, as written, and the
// entry that matched, or that none did: in text, and a field per check in
// JSON.
func TestExplainShowsWhatEachGateRead(t *testing.T) {
	client := explainCluster()
	opts := Options{Annotations: ann, Push: pushFromAnywhere, Exclude: patterns("legacy"), Workers: 1}
	tests := map[string]struct {
		object string
		lines  []string
		json   string
	}{
		"a placeholder the source allows: the entry that matched": {
			object: "blog-a/wildcard",
			lines: []string{
				"    pass  --exclude-namespaces: namespace blog-a is not excluded\n" +
					"          checked \"legacy\": no entry matches `blog-a`\n",
				"    pass  replicator.v1.mittwald.de/replication-allowed-namespaces: allows namespace blog-a\n" +
					"          checked \"shop,blog-.*\": matched by entry `blog-.*`\n",
			},
			json: `"checked":[{"key":"replicator.v1.mittwald.de/replication-allowed-namespaces","value":"shop,blog-.*","entries":2,"name":"blog-a","matched":true,"entry":"blog-.*"}]`,
		},
		"a placeholder the source does not allow: the list, and no entry": {
			object: "other/wildcard",
			lines: []string{
				"    FAIL  replicator.v1.mittwald.de/replication-allowed-namespaces: source certs/wildcard does not allow namespace other\n" +
					"          checked \"shop,blog-.*\": no entry matches `other`\n",
			},
			json: `"checked":[{"key":"replicator.v1.mittwald.de/replication-allowed-namespaces","value":"shop,blog-.*","entries":2,"name":"other","matched":false}]`,
		},
		"a long list is cut, with its entries counted": {
			object: "other/long",
			lines: []string{
				"          checked \"" + strings.Repeat("team-0000,", 20) + "…\" (100 entries): no entry matches `other`\n",
			},
			json: `"truncated":true,"bytes":999,"entries":100`,
		},
		"a placeholder in an excluded namespace: the operator's entry": {
			object: "legacy/tls",
			lines: []string{
				"    FAIL  --exclude-namespaces: namespace legacy is excluded by --exclude-namespaces: the replicator writes nothing in it\n" +
					"          checked \"legacy\": matched by entry `legacy`\n",
			},
		},
		"a push source: the policy's list, its annotations as written, what selected or closed each target": {
			object: "certs/wildcard",
			lines: []string{
				"    pass  push policy: namespace certs may push\n" +
					"          checked --push-from-namespaces \".*\": matched by entry `.*`\n" +
					"    reads replicator.v1.mittwald.de/replicate-to \"kube-system\"\n" +
					"    reads replicator.v1.mittwald.de/replicate-to-matching \"tls=yes\"\n",
				"    target kube-system: refused (replicator.v1.mittwald.de/replicate-to: matched by entry `kube-system`; --push-to-system-namespaces \"\": no entry matches `kube-system`)\n",
				"    target legacy: excluded (replicator.v1.mittwald.de/replicate-to-matching: selects `legacy`; --exclude-namespaces \"legacy\": matched by entry `legacy`)\n",
				"    target team-a: create (replicator.v1.mittwald.de/replicate-to-matching: selects `team-a`)\n",
				"  pulled by other/wildcard: refused: source certs/wildcard does not allow namespace other\n",
			},
			json: `"read":[{"key":"replicator.v1.mittwald.de/replicate-to","value":"kube-system","entries":1},{"key":"replicator.v1.mittwald.de/replicate-to-matching","value":"tls=yes","selector":true}]`,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			ns, n, _ := strings.Cut(tt.object, "/")
			ex, err := Explain(context.Background(), client, Secrets(), ns, n, opts, 10*time.Second)
			require.NoError(t, err)
			text := ex.Text()
			t.Logf("%s", text)
			for _, l := range tt.lines {
				assert.Contains(t, text, l)
			}
			out, err := json.Marshal(ex)
			require.NoError(t, err)
			assert.Contains(t, string(out), tt.json)
		})
	}
}

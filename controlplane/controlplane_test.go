package controlplane

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

func TestControlPlaneRestartsKeepDataAndServiceAccountsAreRestricted(t *testing.T) {
	bin := BinDirFromEnv()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("REPLICATOR_TOOLS_BIN is not set; under CI=true this test must run (use make test)")
		}
		t.Skip("REPLICATOR_TOOLS_BIN is not set")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	cp, err := Start(ctx, Options{BinDir: bin, Dir: t.TempDir()})
	require.NoError(t, err)
	defer cp.Stop()
	t.Logf("ready in %s", time.Since(start).Round(time.Millisecond))

	client := kubernetes.NewForConfigOrDie(cp.Config)
	v, err := client.Discovery().ServerVersion()
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(v.GitVersion, "v1.36."), "server version %s", v.GitVersion)

	_, err = client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keep"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	_, err = client.CoreV1().Secrets("keep").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
	require.NoError(t, err)

	require.NoError(t, cp.StopAPIServer())
	_, err = client.CoreV1().Secrets("keep").Get(ctx, "s", metav1.GetOptions{})
	require.Error(t, err, "the API server is down")
	require.NoError(t, cp.StartAPIServer(ctx))
	s, err := client.CoreV1().Secrets("keep").Get(ctx, "s", metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "v", string(s.Data["k"]))

	_, err = client.CoreV1().ServiceAccounts("keep").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "nobody"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	saCfg, err := cp.ServiceAccountConfig(ctx, "keep", "nobody")
	require.NoError(t, err)
	sa := kubernetes.NewForConfigOrDie(saCfg)
	_, err = sa.Discovery().ServerVersion()
	require.NoError(t, err, "an authenticated identity may read /version")
	_, err = sa.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{})
	assert.True(t, apierrors.IsForbidden(err), "RBAC is enforced: %v", err)
}

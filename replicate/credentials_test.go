package replicate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// kubeconfigNaming writes a kubeconfig whose CA and token are files beside
// it, and returns its path.
func kubeconfigNaming(t *testing.T, token, ca string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), []byte(ca), 0o600))
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters:
- name: hub
  cluster:
    server: https://127.0.0.1:1
    certificate-authority: ca.crt
users:
- name: reader
  user:
    tokenFile: token
contexts:
- name: hub
  context: {cluster: hub, user: reader}
current-context: hub
`), 0o600))
	return path
}

// testCA returns a self-signed CA certificate as PEM.
func testCA(t *testing.T, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func TestCredentialsAreReadAgainWhenAFileTheyNameChanges(t *testing.T) {
	one, two := testCA(t, "one"), testCA(t, "two")
	path := kubeconfigNaming(t, "first\n", one)
	dir := filepath.Dir(path)
	c := &credentials{path: path}
	_, err := c.load()
	require.NoError(t, err)
	cfg, _, err := c.snapshot()
	require.NoError(t, err)
	assert.Equal(t, "first", cfg.BearerToken, "the token as read, without its line end")
	assert.Empty(t, cfg.BearerTokenFile, "no file is left for client-go to read on its own schedule")
	assert.Equal(t, one, string(cfg.CAData))
	assert.Empty(t, cfg.CAFile)

	client, err := c.changed()
	require.NoError(t, err)
	assert.Nil(t, client, "nothing changed")

	steps := []struct {
		what   string
		change func()
	}{
		{"a new token", func() { require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("second"), 0o600)) }},
		{"a new CA bundle", func() { require.NoError(t, os.WriteFile(filepath.Join(dir, "ca.crt"), []byte(one+two), 0o600)) }},
		{"the kubeconfig itself", func() {
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(path, append(b, "# rotated\n"...), 0o600))
		}},
	}
	for _, step := range steps {
		step.change()
		client, err := c.changed()
		require.NoError(t, err, step.what)
		assert.NotNil(t, client, "%s: a new client", step.what)
		client, err = c.changed()
		require.NoError(t, err, step.what)
		assert.Nil(t, client, "%s: once", step.what)
	}

	// A file being replaced: the last client stays.
	require.NoError(t, os.Remove(filepath.Join(dir, "token")))
	client, err = c.changed()
	assert.ErrorContains(t, err, "token")
	assert.Nil(t, client)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "token"), []byte("second"), 0o600))
	client, err = c.changed()
	require.NoError(t, err)
	assert.Nil(t, client, "back as it was: nothing to reconnect")
	require.NoError(t, os.WriteFile(path, []byte("clusters: ["), 0o600))
	_, err = c.changed()
	assert.ErrorContains(t, err, "loading kubeconfig")
}

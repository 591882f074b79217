package replicate

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// credentials are a source cluster's kubeconfig and the files it names (a
// token, a CA bundle, a client certificate and key), read as one snapshot:
// each client is built from the contents read, never from the paths, so a
// change of any file is seen by comparing the snapshot's digest, and the
// client built next uses exactly what was compared.
type credentials struct {
	path string
	// configure adjusts each configuration built (user agent, wire
	// format); nil: as the kubeconfig says.
	configure func(*rest.Config)
	// digest is of the snapshot the current client was built from.
	digest [sha256.Size]byte
}

// snapshot reads the kubeconfig and the files it names into one
// configuration that names no files, and the digest of what was read.
func (c *credentials) snapshot() (*rest.Config, [sha256.Size]byte, error) {
	var digest [sha256.Size]byte
	cfg, err := clientcmd.BuildConfigFromFlags("", c.path)
	if err != nil {
		return nil, digest, fmt.Errorf("loading kubeconfig %s: %w", c.path, err)
	}
	kubeconfig, err := os.ReadFile(c.path)
	if err != nil {
		return nil, digest, err
	}
	h := sha256.New()
	h.Write(kubeconfig)
	inline := func(data *[]byte, path *string) error {
		if *path == "" {
			return nil
		}
		b, err := os.ReadFile(*path)
		if err != nil {
			return fmt.Errorf("kubeconfig %s: %w", c.path, err)
		}
		*data, *path = b, ""
		h.Write([]byte{0})
		h.Write(b)
		return nil
	}
	var token []byte
	if err := errors.Join(
		inline(&token, &cfg.BearerTokenFile),
		inline(&cfg.CAData, &cfg.CAFile),
		inline(&cfg.CertData, &cfg.CertFile),
		inline(&cfg.KeyData, &cfg.KeyFile),
	); err != nil {
		return nil, digest, err
	}
	if len(token) > 0 {
		// As client-go reads a token file.
		cfg.BearerToken = string(bytes.TrimSpace(token))
	}
	if c.configure != nil {
		c.configure(cfg)
	}
	copy(digest[:], h.Sum(nil))
	return cfg, digest, nil
}

// load builds a client from the credentials as they are now.
func (c *credentials) load() (kubernetes.Interface, error) {
	cfg, digest, err := c.snapshot()
	if err != nil {
		return nil, err
	}
	return c.use(cfg, digest)
}

// changed returns a client built from the credentials when they differ
// from those the current client was built from, else nil. A snapshot that
// cannot be read (a file being replaced, say) is an error and leaves the
// current client in place.
func (c *credentials) changed() (kubernetes.Interface, error) {
	cfg, digest, err := c.snapshot()
	if err != nil || digest == c.digest {
		return nil, err
	}
	return c.use(cfg, digest)
}

// use builds the client of a snapshot, which becomes the current one.
func (c *credentials) use(cfg *rest.Config, digest [sha256.Size]byte) (kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.digest = digest
	return client, nil
}

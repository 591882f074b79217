package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki is the key material of one control plane, written as PEM files.
type pki struct {
	caCert, serverCert, serverKey, adminCert, adminKey, saKey, saPub string // file paths
	caPEM, adminCertPEM, adminKeyPEM                                 []byte
	// servingCAPEM is the CA the serving certificate is from: the CA at
	// first, another after renewServing.
	servingCAPEM []byte
}

func writePEM(path, typ string, der []byte) ([]byte, error) {
	b := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	return b, os.WriteFile(path, b, 0o600)
}

func newSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
}

// issue signs a certificate for key with the CA (or self-signs when ca is nil).
func issue(tmpl *x509.Certificate, key *ecdsa.PrivateKey, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, []byte, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(10 * 365 * 24 * time.Hour)
	parent, signer := ca, caKey
	if ca == nil {
		parent, signer = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, der, err
}

// generatePKI creates a CA, a serving certificate for loopback, an admin
// client certificate in system:masters and a service-account signing key.
func generatePKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		caCert: filepath.Join(dir, "ca.crt"), serverCert: filepath.Join(dir, "server.crt"), serverKey: filepath.Join(dir, "server.key"),
		adminCert: filepath.Join(dir, "admin.crt"), adminKey: filepath.Join(dir, "admin.key"),
		saKey: filepath.Join(dir, "sa.key"), saPub: filepath.Join(dir, "sa.pub"),
	}
	ca, caKey, err := p.writeCA()
	if err != nil {
		return nil, err
	}
	if err := p.writeServing(ca, caKey); err != nil {
		return nil, err
	}
	p.servingCAPEM = p.caPEM
	if p.adminCertPEM, p.adminKeyPEM, err = writeLeaf(&x509.Certificate{
		Subject: pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, ca, caKey, p.adminCert, p.adminKey); err != nil {
		return nil, fmt.Errorf("creating admin certificate: %w", err)
	}
	if err := p.writeServiceAccountKeys(); err != nil {
		return nil, err
	}
	return p, nil
}

// writeServing issues the serving certificate for loopback from ca.
func (p *pki) writeServing(ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	if _, _, err := writeLeaf(&x509.Certificate{
		Subject: pkix.Name{CommonName: "kube-apiserver"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
	}, ca, caKey, p.serverCert, p.serverKey); err != nil {
		return fmt.Errorf("creating serving certificate: %w", err)
	}
	return nil
}

// renewServing replaces the serving certificate by one from a new CA, which
// it returns as PEM; client certificates are still checked against the
// first CA.
func (p *pki) renewServing() ([]byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, err
	}
	ca, der, err := issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "replicator-test-serving-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, key, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	if err := p.writeServing(ca, key); err != nil {
		return nil, err
	}
	p.servingCAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return p.servingCAPEM, nil
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

// writeCA creates the CA and writes its certificate (p.caCert, p.caPEM).
func (p *pki) writeCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	ca, caDER, err := issue(&x509.Certificate{
		Subject: pkix.Name{CommonName: "replicator-test-ca"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}, caKey, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("creating CA: %w", err)
	}
	if p.caPEM, err = writePEM(p.caCert, "CERTIFICATE", caDER); err != nil {
		return nil, nil, err
	}
	return ca, caKey, nil
}

// writeLeaf issues tmpl with a new key from the CA and writes both; it
// returns them as PEM.
func writeLeaf(tmpl *x509.Certificate, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) ([]byte, []byte, error) {
	key, err := newKey()
	if err != nil {
		return nil, nil, err
	}
	_, der, err := issue(tmpl, key, ca, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err := writePEM(certPath, "CERTIFICATE", der)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := writePEM(keyPath, "EC PRIVATE KEY", keyDER)
	return certPEM, keyPEM, err
}

// writeServiceAccountKeys writes the key pair that signs service-account
// tokens: RSA, which every verifier accepts.
func (p *pki) writeServiceAccountKeys() error {
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	if _, err := writePEM(p.saKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)); err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	_, err = writePEM(p.saPub, "PUBLIC KEY", pub)
	return err
}

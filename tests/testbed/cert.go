package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// SelfSignedPEM makes a self-signed ECDSA P-256 certificate for commonName,
// valid for a day and for 127.0.0.1 and localhost, and returns the
// certificate and its key as PEM, and the SHA-256 fingerprint of the
// certificate (lowercase hex of the DER, as InspIRCd's sslinfo with
// hash="sha256" and the gateway's fingerprint pin compute it).
func SelfSignedPEM(tb testing.TB, commonName string) (certPEM, keyPEM, fingerprint string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("generating a key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		tb.Fatalf("generating a serial number: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{commonName, "localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatalf("making a certificate: %v", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatalf("encoding a key: %v", err)
	}
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})),
		hex.EncodeToString(sum[:])
}

// writeSelfSigned writes a self-signed certificate and its key for name
// and returns the certificate's SHA-256 fingerprint.
func writeSelfSigned(tb testing.TB, certPath, keyPath, name string) string {
	tb.Helper()
	certPEM, keyPEM, fp := SelfSignedPEM(tb, name)
	writeFile(tb, certPath, certPEM)
	writeFile(tb, keyPath, keyPEM)
	return fp
}

// randomHex returns n random bytes as hex (passwords for server links).
func randomHex(tb testing.TB, n int) string {
	tb.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatalf("reading random bytes: %v", err)
	}
	return hex.EncodeToString(b)
}

package irc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"switchboard/bridge"
	"switchboard/tests/testbed"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 into a
// world-readable directory (ngircd reads it as nobody) and returns the
// paths and the SHA-256 fingerprint.
func selfSigned(t *testing.T) (certPath, keyPath, fingerprint string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "irc.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"irc.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "switchboard-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o644)
	sum := sha256.Sum256(der)
	return certPath, keyPath, hex.EncodeToString(sum[:])
}

// TestTLS checks that certificates are verified by default, that
// tls_verify = false and a fingerprint pin work, and that a wrong pin is
// refused.
func TestTLS(t *testing.T) {
	cert, key, fp := selfSigned(t)
	tlsPort := testbed.FreePort(t)
	ng := testbed.StartNgircd(t, testbed.NgircdOptions{NoFloodLimit: true,
		ExtraConfig: fmt.Sprintf("[SSL]\n\tCertFile = %s\n\tKeyFile = %s\n\tPorts = %d\n", cert, key, tlsPort)})
	if err := testbed.WaitPort(fmt.Sprintf("127.0.0.1:%d", tlsPort), 10*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, ng.LogTail())
	}
	bob := testbed.DialIRC(t, ng.Addr(), "bob")
	bob.Join("#tls")
	addr := fmt.Sprintf("127.0.0.1:%d", tlsPort)
	colons := strings.ToUpper(fp[:2])
	for i := 2; i < len(fp); i += 2 {
		colons += ":" + strings.ToUpper(fp[i:i+2])
	}
	for _, tc := range []struct {
		name   string
		net    NetworkConfig
		joined bool
	}{
		{"verify by default", NetworkConfig{TLS: true}, false},
		{"verify off", NetworkConfig{TLS: true, TLSVerify: ptr(false)}, true},
		{"pinned", NetworkConfig{TLS: true, Fingerprint: colons}, true},
		{"wrong pin", NetworkConfig{TLS: true, Fingerprint: strings.Repeat("ab", 32)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(addr)
			tc.net.Name, tc.net.Address = "local", addr
			cfg.Networks[0] = tc.net
			h := newHarness(t, cfg)
			alice := jid.MustParse("alice@localhost/pc")
			occ := h.addr("#tls%local@irc.localhost/alice")
			h.dispatch(alice, bridge.JoinRoom{From: alice, Room: occ, MUC: true})
			ev, ok := h.next(func(ev bridge.Outbound) bool {
				switch ev.(type) {
				case bridge.RoomJoined, bridge.DeliveryError:
					return true
				}
				return false
			}, 30*time.Second)
			if !ok {
				t.Fatal("no answer to the join")
			}
			switch ev := ev.(type) {
			case bridge.RoomJoined:
				if !tc.joined {
					t.Fatal("joined over TLS that should have been refused")
				}
			case bridge.DeliveryError:
				if tc.joined {
					t.Fatalf("join failed: %+v", ev.Err)
				}
				if !strings.Contains(ev.Err.Text, "certificate") && !strings.Contains(ev.Err.Text, "fingerprint") {
					t.Fatalf("error does not say why: %+v", ev.Err)
				}
			}
		})
	}
}

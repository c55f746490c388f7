package store

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "store.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != KeySize {
		t.Fatalf("key has %d bytes", len(k))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if string(data) != hex.EncodeToString(k)+"\n" {
		t.Fatalf("key file holds %q", data)
	}
	k2, err := LoadOrCreateKey(path)
	if err != nil || hex.EncodeToString(k2) != hex.EncodeToString(k) {
		t.Fatalf("reload: %x, %v", k2, err)
	}

	// Readable by others: refused, and the message says what to do.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreateKey(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key file: %v", err)
	}
	if strings.Contains(err.Error(), hex.EncodeToString(k)) {
		t.Fatalf("error leaks the key: %v", err)
	}
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreateKey(path); err == nil {
		t.Fatal("0640 key file accepted")
	}

	for name, content := range map[string]string{
		"short":   hex.EncodeToString(k[:16]) + "\n",
		"long":    hex.EncodeToString(append(k, k...)) + "\n",
		"nothex":  strings.Repeat("zq", KeySize) + "\n",
		"empty":   "",
		"garbage": strings.Repeat("x", 10000),
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreateKey(p)
		if err == nil {
			t.Fatalf("%s key file accepted", name)
		}
		if name == "nothex" && strings.Contains(err.Error(), "zq") {
			t.Fatalf("error quotes the key file: %v", err)
		}
		t.Logf("%s: %v", name, err)
	}
	// Surrounding white space is fine.
	p := filepath.Join(dir, "spaces")
	os.WriteFile(p, []byte("  "+strings.ToUpper(hex.EncodeToString(k))+"\r\n\n"), 0o600)
	if k3, err := LoadOrCreateKey(p); err != nil || hex.EncodeToString(k3) != hex.EncodeToString(k) {
		t.Fatalf("key with white space: %v", err)
	}
	// A directory is not a key file.
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("a directory accepted as key file")
	}
}

func TestParseKey(t *testing.T) {
	k := testKey(7)
	got, err := ParseKey(hex.EncodeToString(k) + "\n")
	if err != nil || hex.EncodeToString(got) != hex.EncodeToString(k) {
		t.Fatalf("ParseKey = %x, %v", got, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("g", 64), hex.EncodeToString(k) + "00"} {
		if _, err := ParseKey(bad); err == nil {
			t.Fatalf("ParseKey(%q) succeeded", bad)
		} else if len(bad) > 4 && strings.Contains(err.Error(), bad[:8]) {
			t.Fatalf("ParseKey error quotes its input: %v", err)
		}
	}
}

func TestSealer(t *testing.T) {
	s, err := newSealer(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	ad := accountAD("alice@x", "irc")
	ct, err := s.seal([]byte(`{"password":"pw"}`), ad)
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := s.open(ct, ad); err != nil || string(pt) != `{"password":"pw"}` {
		t.Fatalf("open = %q, %v", pt, err)
	}
	other, _ := newSealer(testKey(2))
	if _, err := other.open(ct, ad); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other key: %v", err)
	}
	for _, ad2 := range [][]byte{accountAD("alice@x", "sms"), accountAD("mallory@x", "irc"), accountAD("alice@xirc", ""), accountAD("alice@", "xirc")} {
		if _, err := s.open(ct, ad2); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("other row: %v", err)
		}
	}
	bad := append([]byte(nil), ct...)
	bad[len(bad)-1] ^= 1
	if _, err := s.open(bad, ad); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("tampered: %v", err)
	}
	bad = append([]byte(nil), ct...)
	bad[0] = 9
	if _, err := s.open(bad, ad); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("unknown version: %v", err)
	}
	if _, err := s.open(ct[:10], ad); err == nil {
		t.Fatal("short ciphertext opened")
	}
	if _, err := newSealer(make([]byte, 16)); err == nil {
		t.Fatal("16-byte key accepted")
	}
}

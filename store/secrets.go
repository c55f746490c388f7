package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length in bytes of the key that encrypts Account.Secrets
// (AES-256).
const KeySize = 32

// KeyEnv is the environment variable a caller may read the key from (hex,
// 64 characters) instead of a key file; pass its value to ParseKey.
const KeyEnv = "SWITCHBOARD_STORE_KEY"

// ErrWrongKey means the secrets in the database cannot be decrypted with
// the key given to Open: the key file was replaced or belongs to another
// installation (or a row was altered or copied to another account).
var ErrWrongKey = errors.New("the key file does not match the one the secrets were encrypted with")

// secretsVersion is the first byte of every ciphertext: AES-256-GCM with a
// random 96-bit nonce.
const secretsVersion = 1

// ParseKey decodes a hex-encoded key (as found in the key file or in
// SWITCHBOARD_STORE_KEY). Surrounding white space is ignored. The error
// never repeats the input.
func ParseKey(s string) ([]byte, error) {
	k, err := parseKey(s)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return k, nil
}

func parseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*KeySize {
		return nil, fmt.Errorf("the key must be %d hex digits (%d bytes), it has %d characters", 2*KeySize, KeySize, len(s))
	}
	k, err := hex.DecodeString(s)
	if err != nil {
		// hex's error quotes the offending character: do not pass it on.
		return nil, fmt.Errorf("the key must be %d hex digits (0-9, a-f): it holds other characters", 2*KeySize)
	}
	return k, nil
}

// LoadOrCreateKey reads the key file at path (one line, hex) or, when it
// does not exist, creates it with a new random key and mode 0600 (and its
// directory with mode 0700 if that is missing). A key file that group or
// others may access, or that does not hold exactly KeySize bytes, is an
// error.
func LoadOrCreateKey(path string) ([]byte, error) {
	for range 2 {
		k, err := readKeyFile(path)
		if !errors.Is(err, fs.ErrNotExist) {
			return k, err
		}
		k, err = createKeyFile(path)
		if !errors.Is(err, fs.ErrExist) {
			return k, err
		}
		// Someone else created it in between: read theirs.
	}
	return nil, fmt.Errorf("store: key file %s: created and removed concurrently, try again", path)
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("store: key file %s has mode %04o: group or others can access it, run `chmod 600 %s`", path, perm, path)
	}
	const maxLen = 4 * KeySize // the hex, a newline and some slack
	buf, err := io.ReadAll(io.LimitReader(f, maxLen+1))
	if err != nil {
		return nil, fmt.Errorf("store: reading key file: %w", err)
	}
	if len(buf) > maxLen {
		return nil, fmt.Errorf("store: key file %s is too long: it must hold %d hex digits on one line", path, 2*KeySize)
	}
	k, err := parseKey(string(buf))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return k, nil
}

func createKeyFile(path string) ([]byte, error) {
	if dir := filepath.Dir(path); dir != "" {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("store: creating key file directory: %w", err)
			}
		}
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("store: generating a key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("store: creating key file: %w", err)
	}
	_, err = f.WriteString(hex.EncodeToString(k) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("store: writing key file %s: %w", path, err)
	}
	return k, nil
}

// sealer encrypts and decrypts secrets with AES-256-GCM.
type sealer struct {
	aead cipher.AEAD
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: the key must be %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: key: %w", err)
	}
	return &sealer{aead: aead}, nil
}

// seal returns version || nonce || ciphertext+tag.
func (s *sealer) seal(plaintext, ad []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+s.aead.Overhead())
	out[0] = secretsVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plaintext, ad), nil
}

// open reverses seal. An authentication failure is ErrWrongKey.
func (s *sealer) open(ct, ad []byte) ([]byte, error) {
	if len(ct) == 0 {
		return nil, errors.New("no ciphertext")
	}
	if ct[0] != secretsVersion {
		return nil, fmt.Errorf("unknown encryption version %d (written by a newer switchboard?)", ct[0])
	}
	ns := s.aead.NonceSize()
	if len(ct) < 1+ns+s.aead.Overhead() {
		return nil, errors.New("ciphertext too short")
	}
	pt, err := s.aead.Open(nil, ct[1:1+ns], ct[1+ns:], ad)
	if err != nil {
		return nil, ErrWrongKey
	}
	return pt, nil
}

// accountAD is the additional data that binds a ciphertext to its row.
func accountAD(user, transport string) []byte {
	ad := make([]byte, 0, 32+len(user)+len(transport))
	ad = append(ad, "switchboard account secrets\x00"...)
	ad = binary.AppendUvarint(ad, uint64(len(user)))
	ad = append(ad, user...)
	ad = binary.AppendUvarint(ad, uint64(len(transport)))
	ad = append(ad, transport...)
	return ad
}

// Key check: a known plaintext sealed with the key when the database is
// created, so that Open notices a wrong key at once.
var (
	keyCheckAD        = []byte("switchboard key check")
	keyCheckPlaintext = []byte("switchboard")
)

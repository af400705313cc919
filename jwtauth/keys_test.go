package jwtauth

import (
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

func TestGenKeypairModes(t *testing.T) {
	for _, alg := range []string{"", "ES256", "RS256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			priv, pub := genKey(t, alg)
			for path, want := range map[string]os.FileMode{priv: 0o600, pub: 0o644} {
				st, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				if got := st.Mode().Perm(); got != want {
					t.Errorf("%s mode %04o, want %04o", filepath.Base(path), got, want)
				}
			}
			i := openIssuer(t, Config{SigningKey: priv})
			wantAlg := alg
			if wantAlg == "" {
				wantAlg = "ES256"
			}
			if got := i.JWKS().Keys[0].Algorithm; got != wantAlg {
				t.Errorf("alg %s, want %s", got, wantAlg)
			}
			// The public file gives the same kid as the private key.
			j := openIssuer(t, Config{RetiredKeys: []RetiredKey{{PublicKey: pub, RetiredAt: time.Now()}}})
			if got, want := j.JWKS().Keys[0].KeyID, i.KeyID(); got != want {
				t.Errorf("kid from public file %s, from private %s", got, want)
			}
		})
	}
	if _, _, err := GenKeypair(t.TempDir(), "HS256"); err == nil {
		t.Error("GenKeypair(HS256) succeeded")
	}
}

func TestGenerateSecret(t *testing.T) {
	a, b := GenerateSecret(), GenerateSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	raw, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil || len(raw) != 32 {
		t.Fatalf("secret %q: %d bytes, %v; want 32 bytes of base64url", a, len(raw), err)
	}
}

func TestLooseKeyFilePermissionsRefused(t *testing.T) {
	priv, _ := genKey(t, "ES256")
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
		if err := os.Chmod(priv, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(Config{SigningKey: priv}, nil)
		if !errors.Is(err, ErrLooseFileMode) || !strings.Contains(err.Error(), "chmod 600 "+priv) {
			t.Errorf("mode %04o: Open = %v, want a refusal saying chmod 600 %s", mode, err, priv)
		}
	}
	os.Chmod(priv, 0o400)
	if _, err := Open(Config{SigningKey: priv}, nil); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
	master := writeFile(t, "master", "a-long-enough-master-token\n", 0o644)
	if _, err := Open(Config{MasterTokenFile: master}, nil); !errors.Is(err, ErrLooseFileMode) || !strings.Contains(err.Error(), "chmod 600 "+master) {
		t.Errorf("master token 0644: %v", err)
	}
	keys := writeFile(t, "keys", "k=2df1eeea370eacdc5cf7e96c2d82140d1568079a5d4d87006ec8718a98883b36\n", 0o640)
	if _, err := Open(Config{APIKeysFile: keys}, nil); !errors.Is(err, ErrLooseFileMode) || !strings.Contains(err.Error(), "chmod 600 "+keys) {
		t.Errorf("api keys 0640: %v", err)
	}
	if _, err := NewAPIKey(keys, "new"); !errors.Is(err, ErrLooseFileMode) {
		t.Errorf("NewAPIKey on 0640 file: %v", err)
	}
}

func TestInlineKeyWithUnderscores(t *testing.T) {
	priv, pub := genKey(t, "ES256")
	fromFile := openIssuer(t, Config{SigningKey: priv})
	inline := inlineOf(t, priv)
	if strings.Contains(inline, "\n") || !strings.Contains(inline, "_") {
		t.Fatalf("inline form %q", inline)
	}
	fromInline := openIssuer(t, Config{SigningKey: inline, RetiredKeys: []RetiredKey{{PublicKey: inlineOf(t, pub), RetiredAt: time.Now()}}})
	if fromInline.KeyID() != fromFile.KeyID() {
		t.Errorf("inline key kid %s, file %s", fromInline.KeyID(), fromFile.KeyID())
	}
	if n := len(fromInline.JWKS().Keys); n != 1 {
		t.Errorf("retired copy of the signing key published twice: %d keys", n)
	}
}

// TestPassphraseKeys uses keys made by openssl, as operators would.
func TestPassphraseKeys(t *testing.T) {
	testrig.Require(t, "openssl")
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v: %s", args, err, out)
		}
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:s3cret", "-out", p("pbes2-aes256.pem"))
	run("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p("rsa.pem"))
	run("pkcs8", "-topk8", "-v2", "aes128", "-v2prf", "hmacWithSHA1", "-in", p("rsa.pem"), "-passout", "pass:s3cret", "-out", p("pbes2-aes128-sha1.pem"))
	run("pkcs8", "-topk8", "-v2", "des3", "-in", p("rsa.pem"), "-passout", "pass:s3cret", "-out", p("pbes2-des3.pem"))
	run("genpkey", "-algorithm", "ED25519", "-aes-192-cbc", "-pass", "pass:s3cret", "-out", p("pbes2-ed25519.pem"))
	// Legacy PEM encryption, as ssh-keygen -m pem and openssl -traditional write.
	run("rsa", "-in", p("rsa.pem"), "-aes128", "-traditional", "-passout", "pass:s3cret", "-out", p("legacy-rsa.pem"))
	run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", p("ec.pem"))
	run("ec", "-in", p("ec.pem"), "-aes256", "-passout", "pass:s3cret", "-out", p("legacy-ec.pem"))
	for _, name := range []string{"pbes2-aes256.pem", "pbes2-aes128-sha1.pem", "pbes2-des3.pem", "pbes2-ed25519.pem", "legacy-rsa.pem", "legacy-ec.pem"} {
		t.Run(name, func(t *testing.T) {
			os.Chmod(p(name), 0o600)
			i, err := Open(Config{SigningKey: p(name), SigningKeyPassphrase: "s3cret"}, nil)
			if err != nil {
				t.Fatalf("Open with passphrase: %v", err)
			}
			tok, _, err := i.SessionJWT("a", "r", "s", "x", nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := i.Verify(tok); err != nil {
				t.Fatal(err)
			}
			if _, err := Open(Config{SigningKey: p(name), SigningKeyPassphrase: "wrong"}, nil); err == nil {
				t.Error("Open with a wrong passphrase succeeded")
			}
			if _, err := Open(Config{SigningKey: p(name)}, nil); err == nil || !strings.Contains(err.Error(), "no passphrase") {
				t.Errorf("Open without passphrase = %v, want 'no passphrase'", err)
			}
		})
	}
}

func TestSSHKeygenPEM(t *testing.T) {
	testrig.Require(t, "ssh-keygen")
	// OPAL's recipe (smaller key for speed), with a passphrase.
	key := filepath.Join(t.TempDir(), "opal")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "pem", "-N", "pass phrase", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	if _, err := Open(Config{SigningKey: key, SigningKeyPassphrase: "pass phrase"}, nil); err != nil {
		t.Fatalf("Open(ssh-keygen -m pem key): %v", err)
	}
	_, err := Open(Config{RetiredKeys: []RetiredKey{{PublicKey: key + ".pub", RetiredAt: time.Now()}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "ssh-keygen -e -m pkcs8") {
		t.Errorf("OpenSSH public key: %v, want a conversion hint", err)
	}
}

package tls

import (
	"context"
	stdtls "crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/conf"
)

// getTraced is get on c, also reporting whether the connection was reused.
func getTraced(t *testing.T, c *http.Client, addr string) (serial *big.Int, reused bool) {
	t.Helper()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	})
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	io.Copy(io.Discard, resp.Body) // a drained body returns the connection to the pool
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0].SerialNumber, reused
}

// newPair writes a new leaf and its key over the fixture's chain and key files.
func newPair(t *testing.T, f *fixture) *x509.Certificate {
	t.Helper()
	p := getPKI(t)
	leaf, key := p.leaf(t)
	replaceFile(t, f.chainPEM, certsPEM(leaf, p.inter))
	replaceFile(t, f.keyPEM, keyPEM(t, key))
	return leaf
}

// TestReload swaps files under a live server: a held keep-alive connection
// keeps working on the old certificate, a new one gets the new
// certificate, and a broken file keeps the previous one in service.
func TestReload(t *testing.T) {
	f := newFixture(t)
	l := mustLoad(t, conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM})
	addr := serve(t, l.Config())

	held := newClient(t)
	if s, _ := getTraced(t, held, addr); s.Cmp(f.leaf.SerialNumber) != 0 {
		t.Fatalf("first serial %v, want %v", s, f.leaf.SerialNumber)
	}

	leaf2 := newPair(t, f)
	if err := l.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	s, reused := getTraced(t, held, addr)
	if !reused {
		t.Fatal("held connection was not reused; it must survive a reload")
	}
	if s.Cmp(f.leaf.SerialNumber) != 0 {
		t.Errorf("held connection shows serial %v, want the old %v", s, f.leaf.SerialNumber)
	}
	if got := servedSerial(t, addr); got.Cmp(leaf2.SerialNumber) != 0 {
		t.Errorf("new connection got serial %v, want the new %v", got, leaf2.SerialNumber)
	}
	if !l.NotAfter().Equal(leaf2.NotAfter) {
		t.Errorf("NotAfter() %v, want %v", l.NotAfter(), leaf2.NotAfter)
	}

	t.Run("broken key file keeps the old certificate", func(t *testing.T) {
		replaceFile(t, f.keyPEM, []byte("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEH\n"))
		err := l.Reload()
		if err == nil {
			t.Fatal("Reload succeeded with a broken key file")
		}
		if !strings.Contains(err.Error(), f.keyPEM) || !errors.Is(err, ErrNoPrivateKey) {
			t.Errorf("Reload error %q should name %s and wrap ErrNoPrivateKey", err, f.keyPEM)
		}
		if got := servedSerial(t, addr); got.Cmp(leaf2.SerialNumber) != 0 {
			t.Errorf("after a failed reload serial %v, want the previous %v", got, leaf2.SerialNumber)
		}
		if _, reused := getTraced(t, held, addr); !reused {
			t.Error("held connection did not survive")
		}
	})
	t.Run("certificate without its key keeps the old certificate", func(t *testing.T) {
		p := getPKI(t)
		leaf3, _ := p.leaf(t)
		replaceFile(t, f.chainPEM, certsPEM(leaf3, p.inter))
		replaceFile(t, f.keyPEM, keyPEM(t, newKey(t)))
		err := l.Reload()
		if !errors.Is(err, ErrKeyMismatch) || !strings.Contains(err.Error(), f.chainPEM) {
			t.Errorf("Reload error %v, want a key mismatch naming %s", err, f.chainPEM)
		}
		if got := servedSerial(t, addr); got.Cmp(leaf2.SerialNumber) != 0 {
			t.Errorf("serial %v, want the previous %v", got, leaf2.SerialNumber)
		}
	})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatch checks that polling picks up changed files, survives a broken
// file without retrying it every tick, and stops with its context.
func TestWatch(t *testing.T) {
	f := newFixture(t)
	log, buf := testLogger(t)
	l, err := Load(conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, l.Config())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Watch(ctx, 10*time.Millisecond); close(done) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Error("Watch did not return after its context ended")
		}
	}()

	// A pair written one file after the other, not atomically.
	p := getPKI(t)
	leaf2, key2 := p.leaf(t)
	if err := os.WriteFile(f.chainPEM, certsPEM(leaf2, p.inter), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(30 * time.Millisecond)
	if err := os.WriteFile(f.keyPEM, keyPEM(t, key2), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new certificate is served", func() bool {
		return servedSerial(t, addr).Cmp(leaf2.SerialNumber) == 0
	})

	failures := strings.Count(buf.String(), "tls reload failed")
	replaceFile(t, f.chainPEM, []byte("garbage"))
	waitFor(t, "the failed reload is logged", func() bool {
		return strings.Count(buf.String(), "tls reload failed") > failures
	})
	time.Sleep(100 * time.Millisecond) // ten more polls
	if n := strings.Count(buf.String(), "tls reload failed") - failures; n != 1 {
		t.Errorf("an unchanged broken file was reloaded %d times, want once", n)
	}
	if got := servedSerial(t, addr); got.Cmp(leaf2.SerialNumber) != 0 {
		t.Errorf("serial %v, want the previous %v", got, leaf2.SerialNumber)
	}

	leaf3 := newPair(t, f)
	waitFor(t, "the repaired files are served", func() bool {
		return servedSerial(t, addr).Cmp(leaf3.SerialNumber) == 0
	})
}

// TestWatchKeystoreAndPasswordFile renews a PKCS12 keystore under a new
// password: Watch reloads once both the keystore and -PF file changed.
func TestWatchKeystoreAndPasswordFile(t *testing.T) {
	f := newFixture(t)
	pf := writeFile(t, f.dir, "pw", []byte("first-password\n"))
	ks := f.p12(t, "server.p12", "first-password")
	l := mustLoad(t, conf.TLS{Keystore: ks, PasswordFile: pf, ReloadInterval: conf.Duration{Duration: 10 * time.Millisecond}})
	if got := l.ReloadInterval(); got != 10*time.Millisecond {
		t.Errorf("ReloadInterval() = %v, want 10ms", got)
	}
	addr := serve(t, l.Config())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Watch(ctx, 0)

	f2 := newFixture(t)
	renewed := f2.p12(t, "new.p12", "second-password")
	b, err := os.ReadFile(renewed)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, ks, b)
	replaceFile(t, pf, []byte("second-password\n"))
	waitFor(t, "the renewed keystore is served", func() bool {
		return servedSerial(t, addr).Cmp(f2.leaf.SerialNumber) == 0
	})
}

// TestPromptOnce checks that -PP prompts once, at Load, and reloads reuse
// the password kept in memory.
func TestPromptOnce(t *testing.T) {
	f := newFixture(t)
	const pw = "typed-password"
	ks := f.p12(t, "server.p12", pw)
	calls := 0
	var prompts []string
	prompt := func(p string) ([]byte, error) {
		calls++
		prompts = append(prompts, p)
		return []byte(pw), nil
	}
	l := mustLoad(t, conf.TLS{Keystore: ks, PasswordPrompt: true}, WithPrompt(prompt))
	f2 := newFixture(t)
	b, _ := os.ReadFile(f2.p12(t, "new.p12", pw))
	replaceFile(t, ks, b)
	if err := l.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if calls != 1 {
		t.Errorf("prompted %d times, want 1", calls)
	}
	if want := "Password for keystore " + ks + ": "; prompts[0] != want {
		t.Errorf("prompt %q, want %q", prompts[0], want)
	}
	if got := l.Leaf().SerialNumber; got.Cmp(f2.leaf.SerialNumber) != 0 {
		t.Errorf("serial %v after reload, want %v", got, f2.leaf.SerialNumber)
	}
}

// TestClientCertificates checks optional client certificate auth: a
// verified certificate is reported by ClientCertVerified, none is allowed,
// a foreign one is refused, and a reload of the CA file applies to new and
// to resumed sessions alike.
func TestClientCertificates(t *testing.T) {
	f := newFixture(t)
	p := getPKI(t)
	caFile := writeFile(t, f.dir, "client-ca.pem", certsPEM(p.clientCA))
	l := mustLoad(t, conf.TLS{CertFile: f.chainPEM, KeyFile: f.keyPEM, ClientCAFile: caFile})
	addr := serve(t, l.Config())
	admin := clientCert(t, p.clientCA, p.clientCAKey)

	if body, _ := get(t, newClient(t), addr); body != "ok" {
		t.Errorf("without a client certificate: %q, want ok", body)
	}
	if body, _ := get(t, newClient(t, admin), addr); body != "ok admin" {
		t.Errorf("with a client certificate: %q, want ok admin", body)
	}
	// Go's client offers only a certificate from a CA the server names;
	// forcing one shows the server refuses it.
	foreign := clientCert(t, p.inter, p.interKey)
	if body, _ := get(t, newClient(t, foreign), addr); body != "ok" {
		t.Errorf("with an unrequested certificate: %q, want ok", body)
	}
	if body, _, err := tryGet(forcingClient(t, foreign), addr); err == nil {
		t.Errorf("a certificate from another CA was accepted: %q", body)
	}

	// Resumption works while the CA is unchanged...
	resuming := func() *http.Client {
		c := newClient(t, admin)
		c.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = stdtls.NewLRUClientSessionCache(4)
		return c
	}
	c := resuming()
	get(t, c, addr)
	c.Transport.(*http.Transport).CloseIdleConnections()
	if body, cs := get(t, c, addr); !cs.DidResume || body != "ok admin" {
		t.Errorf("resumed=%v body=%q, want a resumed admin session", cs.DidResume, body)
	}

	// ...and after the CA is replaced, neither a new nor a resumed session
	// of the old CA's certificate gets admin rights.
	c = resuming()
	get(t, c, addr)
	c.Transport.(*http.Transport).CloseIdleConnections()
	other := caTemplate("another client CA")
	otherKey := newKey(t)
	otherCA := sign(t, other, other, otherKey.Public(), otherKey)
	replaceFile(t, caFile, certsPEM(otherCA))
	if err := l.Reload(); err != nil {
		t.Fatal(err)
	}
	if body, cs, err := tryGet(c, addr); err == nil && body == "ok admin" {
		t.Errorf("resumed session (resumed=%v) kept admin rights after its CA was removed", cs.DidResume)
	}
	if body, _, err := tryGet(forcingClient(t, admin), addr); err == nil {
		t.Errorf("new connection with the removed CA's certificate got %q", body)
	}
	if body, _ := get(t, newClient(t, clientCert(t, otherCA, otherKey)), addr); body != "ok admin" {
		t.Errorf("certificate of the new CA: %q, want ok admin", body)
	}
	if ClientCertVerified(&http.Request{}) || ClientCertVerified(nil) {
		t.Error("ClientCertVerified true without TLS")
	}
}

// forcingClient presents cert whatever CAs the server asks for.
func forcingClient(t *testing.T, cert stdtls.Certificate) *http.Client {
	c := newClient(t)
	c.Transport.(*http.Transport).TLSClientConfig.GetClientCertificate = func(*stdtls.CertificateRequestInfo) (*stdtls.Certificate, error) {
		return &cert, nil
	}
	return c
}

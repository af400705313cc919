package krb5

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/krberror"
	"github.com/jcmturner/gokrb5/v8/messages"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/testrig"
)

// logBuf collects a module's log for assertions; safe for concurrent logins.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// open opens a module with cfg and a debug-level log that the test can read.
// It fails the test if any password appears in that log.
func open(t testing.TB, cfg Config) (*Kerberos, *logBuf) {
	t.Helper()
	lb := &logBuf{}
	m, err := Open(cfg, slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		for _, pw := range []string{alicePW, bobPW, otherPW, "wrong-password"} {
			if strings.Contains(lb.String(), pw) {
				t.Errorf("a password appears in the log:\n%s", lb)
			}
		}
	})
	return m, lb
}

// baseConfig is a validated configuration against k's realm.
func baseConfig(k *testrig.KDC) Config {
	return Config{
		Krb5Conf:         k.Krb5Conf,
		Keytab:           k.Keytab,
		ServicePrincipal: "HTTP/localhost",
		Timeout:          conf.Duration{Duration: 5 * time.Second},
	}
}

func TestLogin(t *testing.T) {
	k := testKDC(t)
	m, lb := open(t, baseConfig(k))

	tests := []struct {
		name, user, pw string
		ok             bool
		wantUser       string
	}{
		{"good password", "alice", alicePW, true, "alice"},
		{"default realm spelled out", "alice@" + testRealm, alicePW, true, "alice"},
		{"wrong password", "alice", "wrong-password", false, ""},
		{"unknown principal", "mallory", alicePW, false, ""},
		{"realm not allowed", "alice@OTHER.REALM", alicePW, false, ""},
		{"realm in wrong case", "alice@example.org", alicePW, false, ""},
		{"empty password", "alice", "", false, ""},
		{"password with NUL", "alice", alicePW + "\x00", false, ""},
		{"newline in user", "alice\nuid=0", alicePW, false, ""},
		{"NUL in user", "alice\x00", alicePW, false, ""},
		{"empty user", "", alicePW, false, ""},
		{"realm only", "@" + testRealm, alicePW, false, ""},
		{"empty realm", "alice@", alicePW, false, ""},
		{"two realms", "alice@" + testRealm + "@" + testRealm, alicePW, false, ""},
		{"backslash", `alice\@` + testRealm, alicePW, false, ""},
		{"empty component", "alice/", alicePW, false, ""},
		{"password expired", "expired", otherPW, false, ""},
		{"principal locked", "locked", otherPW, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, ok, err := m.Login(context.Background(), tc.user, tc.pw)
			if err != nil {
				t.Fatalf("Login(%q) error = %v, want nil", tc.user, err)
			}
			if ok != tc.ok {
				t.Fatalf("Login(%q) ok = %v, want %v", tc.user, ok, tc.ok)
			}
			if id.User != tc.wantUser || len(id.Roles) != 0 || len(id.Attrs) != 0 {
				t.Errorf("Login(%q) identity = %+v, want User %q and nothing else", tc.user, id, tc.wantUser)
			}
		})
	}
	// The failures above must come from the KDC's own error codes.
	for _, code := range []string{"KDC_ERR_PREAUTH_FAILED", "KDC_ERR_C_PRINCIPAL_UNKNOWN", "KDC_ERR_KEY_EXPIRED", "KDC_ERR_CLIENT_REVOKED"} {
		if !strings.Contains(lb.String(), code) {
			t.Errorf("no login failed with %s; log:\n%s", code, lb)
		}
	}
}

func TestStripRealmFalse(t *testing.T) {
	k := testKDC(t)
	cfg := baseConfig(k)
	no := false
	cfg.StripRealm = &no
	m, _ := open(t, cfg)
	for _, user := range []string{"alice", "alice@" + testRealm} {
		id, ok, err := m.Login(context.Background(), user, alicePW)
		if err != nil || !ok {
			t.Fatalf("Login(%q) = %v, %v; want success", user, ok, err)
		}
		if got, want := id.User, "alice@"+testRealm; got != want {
			t.Errorf("Login(%q) user = %q, want %q", user, got, want)
		}
	}
}

// TestEnctypes logs in end to end with keys of one type each: the user's
// key (AS exchange) and the service key (validation) are both of that type.
func TestEnctypes(t *testing.T) {
	k := testKDC(t)
	tests := []struct {
		name, user, pw, spn, keytab string
		etype                       int32
	}{
		{sha1Type, "alice", alicePW, "HTTP/localhost", k.Keytab, 18},
		{sha2Type, "bob", bobPW, "HTTP/sha2", k.Keytab2, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kt, err := keytab.Load(tc.keytab)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range kt.Entries {
				if e.Key.KeyType != tc.etype {
					t.Fatalf("keytab %s holds a key of type %d, want only %d", tc.keytab, e.Key.KeyType, tc.etype)
				}
			}
			cfg := baseConfig(k)
			cfg.Keytab, cfg.ServicePrincipal = tc.keytab, tc.spn
			m, _ := open(t, cfg)
			id, ok, err := m.Login(context.Background(), tc.user, tc.pw)
			if err != nil || !ok || id.User != tc.user {
				t.Fatalf("Login(%s) = %+v, %v, %v; want success", tc.user, id, ok, err)
			}
			if _, ok, err := m.Login(context.Background(), tc.user, "wrong-password"); ok || err != nil {
				t.Errorf("Login(%s, wrong password) = %v, %v; want false, nil", tc.user, ok, err)
			}
		})
	}
}

// TestWrongKeytabKey is the spoofing test: a keytab with the right principal,
// type and kvno but another key cannot verify the KDC's ticket, exactly as
// for a fake KDC, and the login must fail.
func TestWrongKeytabKey(t *testing.T) {
	k := testKDC(t)
	real, err := keytab.Load(k.Keytab)
	if err != nil {
		t.Fatal(err)
	}
	e := real.Entries[0]
	wrong := keytab.New()
	if err := wrong.AddEntry("HTTP/localhost", testRealm, "not the service key", time.Now(), uint8(e.KVNO), e.Key.KeyType); err != nil {
		t.Fatal(err)
	}
	b, err := wrong.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "wrong.keytab")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := baseConfig(k)
	cfg.Keytab = path
	m, lb := open(t, cfg)
	id, ok, err := m.Login(context.Background(), "alice", alicePW)
	if ok || id.User != "" {
		t.Fatalf("Login with a wrong keytab key succeeded: %+v", id)
	}
	if !errors.Is(err, ErrKDCNotVerified) {
		t.Fatalf("Login error = %v, want one wrapping ErrKDCNotVerified", err)
	}
	if errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("Login error %v wraps ErrUnavailable; a validation failure is not an outage", err)
	}
	if !strings.Contains(lb.String(), "level=ERROR") {
		t.Errorf("validation failure not logged at error level:\n%s", lb)
	}
}

func TestAcceptKDCSpoofing(t *testing.T) {
	k := testKDC(t)
	cfg := baseConfig(k)
	cfg.Keytab, cfg.AcceptKDCSpoofing = "", true
	m, lb := open(t, cfg)
	if !strings.Contains(lb.String(), "level=WARN") || !strings.Contains(lb.String(), "spoofed by a fake KDC") {
		t.Errorf("no warning about spoofing at Open:\n%s", lb)
	}
	if _, ok, err := m.Login(context.Background(), "alice", alicePW); !ok || err != nil {
		t.Errorf("Login = %v, %v; want success", ok, err)
	}
	if _, ok, err := m.Login(context.Background(), "alice", "wrong-password"); ok || err != nil {
		t.Errorf("Login(wrong password) = %v, %v; want false, nil", ok, err)
	}
}

func TestOpenErrors(t *testing.T) {
	k := testKDC(t)
	dir := t.TempDir()
	krb5conf, err := os.ReadFile(k.Krb5Conf)
	if err != nil {
		t.Fatal(err)
	}
	camellia := filepath.Join(dir, "camellia.conf")
	writeFile(t, camellia, strings.Replace(string(krb5conf), "permitted_enctypes = ", "permitted_enctypes = camellia256-cts-cmac ", 1))
	noRealm := filepath.Join(dir, "norealm.conf")
	writeFile(t, noRealm, strings.Replace(string(krb5conf), "default_realm = "+testRealm, "", 1))
	familyOnly := filepath.Join(dir, "family.conf")
	writeFile(t, familyOnly, strings.Replace(string(krb5conf), "default_tkt_enctypes = ", "default_tkt_enctypes = DEFAULT #", 1))
	loose := filepath.Join(dir, "loose.keytab")
	b, _ := os.ReadFile(k.Keytab)
	if err := os.WriteFile(loose, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	tests := []struct {
		name   string
		change func(*Config)
		want   []string // all must appear in the error
	}{
		{"missing krb5.conf", func(c *Config) { c.Krb5Conf = missing }, []string{"cannot read krb5.conf", missing, "krb5conf"}},
		{"no keytab and no accept_kdc_spoofing", func(c *Config) { c.Keytab = "" }, []string{"no keytab configured", "accept_kdc_spoofing"}},
		{"missing keytab", func(c *Config) { c.Keytab = missing }, []string{"cannot read keytab", missing, "ktadd"}},
		{"keytab readable by others", func(c *Config) { c.Keytab = loose }, []string{"chmod 600 " + loose}},
		{"keytab without the service key", func(c *Config) { c.ServicePrincipal = "HTTP/other" }, []string{k.Keytab, "no key for HTTP/other@" + testRealm}},
		{"camellia in krb5.conf", func(c *Config) { c.Krb5Conf = camellia }, []string{camellia, "camellia", "permitted_enctypes", "not support"}},
		{"only enctypes gokrb5 cannot read", func(c *Config) { c.Krb5Conf = familyOnly }, []string{familyOnly, "default_tkt_enctypes"}},
		{"no realm", func(c *Config) { c.Krb5Conf = noRealm }, []string{"no kerberos realm", noRealm}},
		{"unknown realm", func(c *Config) { c.Realm = "NOWHERE.ORG" }, []string{"no kdc for realm NOWHERE.ORG", k.Krb5Conf}},
		{"negative timeout", func(c *Config) { c.Timeout.Duration = -time.Second }, []string{"timeout"}},
		{"bad allowed realm", func(c *Config) { c.AllowedRealms = []string{"a@b"} }, []string{"allowed_realms"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(k)
			tc.change(&cfg)
			_, err := Open(cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Fatal("Open succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Open error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	c.AcceptKDCSpoofing = true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if c.Krb5Conf != DefaultKrb5Conf || c.Timeout.Duration != DefaultTimeout ||
		c.ServicePrincipal != "HTTP/"+host || c.StripRealm == nil || !*c.StripRealm {
		t.Errorf("defaults = %+v", c)
	}
}

func TestConfigFromTOML(t *testing.T) {
	spec, err := conf.NewModuleSpec("corp", `type = "kerberos"
krb5conf = "/etc/krb5.conf"
realm = "EXAMPLE.ORG"
keytab = "/etc/sks/http.keytab"
service_principal = "HTTP/sks.example.org"
strip_realm = false
allowed_realms = ["EXAMPLE.ORG", "PARTNER.ORG"]
timeout = "3s"
`)
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := spec.Decode(&c); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if c.Keytab != "/etc/sks/http.keytab" || c.StripRealm == nil || *c.StripRealm ||
		len(c.AllowedRealms) != 2 || c.Timeout.Duration != 3*time.Second {
		t.Errorf("decoded %+v", c)
	}
	bad, err := conf.NewModuleSpec("corp", "type = \"kerberos\"\nkeytabb = \"x\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Decode(&c); err == nil || !strings.Contains(err.Error(), "keytabb") {
		t.Errorf("Decode of an unknown setting = %v, want an error naming it", err)
	}
}

// TestKDCDown stops a private KDC: logins must fail as unavailable within the
// timeout, and work again once the KDC is back.
func TestKDCDown(t *testing.T) {
	testrig.RequireKDC(t)
	k := testrig.StartKDC(t, t.TempDir())
	cfg := baseConfig(k)
	cfg.Timeout = conf.Duration{Duration: 2 * time.Second}
	m, lb := open(t, cfg)
	ctx := context.Background()
	if _, ok, err := m.Login(ctx, "alice", alicePW); !ok || err != nil {
		t.Fatalf("Login before the stop = %v, %v", ok, err)
	}

	k.Proc.Stop()
	start := time.Now()
	_, ok, err := m.Login(ctx, "alice", alicePW)
	if ok || !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("Login with the kdc down = %v, %v; want an error wrapping ErrUnavailable", ok, err)
	}
	if d := time.Since(start); d > cfg.Timeout.Duration+500*time.Millisecond {
		t.Errorf("Login with the kdc down took %s, timeout is %s", d, cfg.Timeout.Duration)
	}
	if !strings.Contains(lb.String(), "kdc unreachable: check kdc= in krb5.conf") {
		t.Errorf("log does not name the cause and fix:\n%s", lb)
	}

	k.Start(t)
	if _, ok, err := m.Login(ctx, "alice", alicePW); !ok || err != nil {
		t.Fatalf("Login after the restart = %v, %v", ok, err)
	}
}

// TestOpenWithKDCDown: an unreachable KDC at start is a warning, not an
// error, so that a KDC outage does not keep the whole server down.
func TestOpenWithKDCDown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "krb5.conf")
	writeFile(t, path, "[libdefaults]\n default_realm = "+testRealm+"\n dns_lookup_kdc = false\n[realms]\n "+
		testRealm+" = {\n  kdc = 127.0.0.1:"+strconv.Itoa(testrig.FreePort(t))+"\n }\n")
	m, lb := open(t, Config{Krb5Conf: path, AcceptKDCSpoofing: true, ServicePrincipal: "HTTP/localhost"})
	if !strings.Contains(lb.String(), "level=WARN") || !strings.Contains(lb.String(), "kdc unreachable at start") {
		t.Errorf("no warning about the unreachable kdc:\n%s", lb)
	}
	if _, ok, err := m.Login(context.Background(), "alice", alicePW); ok || !errors.Is(err, authn.ErrUnavailable) {
		t.Errorf("Login = %v, %v; want an error wrapping ErrUnavailable", ok, err)
	}
}

// TestTimeout points the module at a KDC that never answers: Login must give
// up at its timeout (gokrb5 alone would wait 5 s per KDC and protocol), and
// sooner when the caller's context ends first.
func TestTimeout(t *testing.T) {
	addr := blackHole(t)
	path := filepath.Join(t.TempDir(), "krb5.conf")
	writeFile(t, path, "[libdefaults]\n default_realm = "+testRealm+"\n dns_lookup_kdc = false\n[realms]\n "+
		testRealm+" = {\n  kdc = "+addr+"\n }\n")
	timeout := 300 * time.Millisecond
	m, lb := open(t, Config{Krb5Conf: path, AcceptKDCSpoofing: true, ServicePrincipal: "HTTP/localhost",
		Timeout: conf.Duration{Duration: timeout}})

	start := time.Now()
	_, ok, err := m.Login(context.Background(), "alice", alicePW)
	if ok || !errors.Is(err, authn.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Login = %v, %v; want an error wrapping ErrUnavailable and DeadlineExceeded", ok, err)
	}
	if d := time.Since(start); d < timeout || d > timeout+time.Second {
		t.Errorf("Login took %s, want about %s", d, timeout)
	}
	if !strings.Contains(lb.String(), "kdc did not answer in time") {
		t.Errorf("timeout not logged:\n%s", lb)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	_, ok, err = m.Login(ctx, "alice", alicePW)
	if ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("Login with a cancelled context = %v, %v; want context.Canceled", ok, err)
	}
	if d := time.Since(start); d > timeout {
		t.Errorf("Login with a cancelled context took %s", d)
	}
}

func TestConcurrentLogins(t *testing.T) {
	k := testKDC(t)
	m, _ := open(t, baseConfig(k))
	const workers, each = 16, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				// every third login uses a wrong password, to mix answers
				pw, want := alicePW, true
				if (w+i)%3 == 0 {
					pw, want = "wrong-password", false
				}
				_, ok, err := m.Login(context.Background(), "alice", pw)
				if err != nil || ok != want {
					errs <- errors.New("worker login: ok=" + boolStr(ok) + " err=" + errStr(err))
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func errStr(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// TestClassify checks how errors shaped exactly as gokrb5 builds them map to
// Login's answers, including the ones the real KDC cannot easily be made to
// send (clock skew).
func TestClassify(t *testing.T) {
	m := &Kerberos{log: slog.New(slog.DiscardHandler), spn: "HTTP/localhost", svcRealm: testRealm}
	kdcErr := func(stage string, code int32) error {
		e := krberror.Errorf(messages.KRBError{ErrorCode: code}, krberror.KDCError, "AS Exchange Error: kerberos error response from KDC")
		return &stageError{stage, e}
	}
	tests := []struct {
		name        string
		err         error
		wantErr     bool
		unavailable bool
	}{
		{"preauth failed", kdcErr(stageAS, errorcode.KDC_ERR_PREAUTH_FAILED), false, false},
		{"unknown principal", kdcErr(stageAS, errorcode.KDC_ERR_C_PRINCIPAL_UNKNOWN), false, false},
		{"revoked", kdcErr(stageAS, errorcode.KDC_ERR_CLIENT_REVOKED), false, false},
		{"key expired", kdcErr(stageAS, errorcode.KDC_ERR_KEY_EXPIRED), false, false},
		{"typed KRBError", &stageError{stageAS, messages.KRBError{ErrorCode: errorcode.KDC_ERR_PREAUTH_FAILED}}, false, false},
		{"clock skew from the kdc", kdcErr(stageAS, errorcode.KRB_AP_ERR_SKEW), true, true},
		{"clock skew seen by gokrb5", &stageError{stageAS, krberror.NewErrorf(krberror.KRBMsgError, "clock skew with KDC too large. Greater than 300 seconds")}, true, true},
		{"kdc unreachable", &stageError{stageAS, krberror.Errorf(errors.New("dial"), krberror.NetworkingError, "AS Exchange Error: failed sending AS_REQ to KDC")}, true, true},
		{"service principal unknown", kdcErr(stageTGS, errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN), true, false},
		{"etype not supported", kdcErr(stageAS, errorcode.KDC_ERR_ETYPE_NOSUPP), true, false},
		{"wrong password without preauth", &stageError{stageAS, krberror.Errorf(errors.New("integrity"), krberror.DecryptingError, "error decrypting EncPart of AS_REP")}, false, false},
		{"not verified", &stageError{stageVerify, ErrKDCNotVerified}, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := m.failed(m.log, tc.err)
			if ok {
				t.Fatal("failed() reported success")
			}
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if got := errors.Is(err, authn.ErrUnavailable); got != tc.unavailable {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tc.unavailable)
			}
		})
	}
}

// benchParallelism makes RunParallel use 16 goroutines whatever GOMAXPROCS is.
func benchParallelism(b *testing.B) {
	p := runtime.GOMAXPROCS(0)
	b.SetParallelism((16 + p - 1) / p)
}

// BenchmarkLogin measures the module's Login, validation included, at 16
// concurrent logins against the local KDC.
func BenchmarkLogin(b *testing.B) {
	k := testKDC(b)
	m, _ := open(b, baseConfig(k))
	benchParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok, err := m.Login(context.Background(), "alice", alicePW); !ok || err != nil {
				b.Errorf("Login = %v, %v", ok, err)
				return
			}
		}
	})
}

// BenchmarkRawGokrb5 is the baseline: gokrb5's AS exchange alone (no
// validation), a new client per login as the module does, same concurrency.
func BenchmarkRawGokrb5(b *testing.B) {
	k := testKDC(b)
	cfg, err := config.Load(k.Krb5Conf)
	if err != nil {
		b.Fatal(err)
	}
	benchParallelism(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cl := client.NewWithPassword("alice", testRealm, alicePW, cfg, client.DisablePAFXFAST(true))
			err := cl.Login()
			cl.Destroy()
			if err != nil {
				b.Errorf("Login: %v", err)
				return
			}
		}
	})
}

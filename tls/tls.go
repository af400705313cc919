// Package tls turns the HTTPS key material named in sks's configuration
// (conf.TLS) into a served *crypto/tls.Config, and reloads it without
// dropping connections.
//
// It reads what the original SessionKeyServer read with -tls <keystore>
// (a Java keystore, JKS or PKCS12, told apart by content, with the password
// from -P, -PF, -PP or the default "SessionKeyServer"), and also PEM
// certificate chains with plain or encrypted keys, as files or inline.
//
// The served certificate sits behind an atomic pointer: Reload (for SIGHUP)
// and Watch (polling) swap it for new handshakes only, and a failed reload
// keeps the previous certificate.
package tls

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	stdtls "crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sks-server/sks/conf"
)

// DefaultReloadInterval is how often Watch looks at the key material files
// when neither its caller nor tls.reload_interval says otherwise. Reading
// and hashing a few kilobytes every 5s costs nothing, and a renewed
// certificate (certbot, cert-manager) is served within seconds.
const DefaultReloadInterval = 5 * time.Second

// expirySoon is how close to its NotAfter a certificate draws a warning.
const expirySoon = 14 * 24 * time.Hour

// Option configures a Loader.
type Option func(*Loader)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(ld *Loader) {
		if l != nil {
			ld.log = l
		}
	}
}

// WithPrompt replaces the terminal prompt used for -PP (PromptTerminal),
// so that tests, or a service manager's password agent, can supply it.
func WithPrompt(p PromptFunc) Option {
	return func(ld *Loader) {
		if p != nil {
			ld.prompt = p
		}
	}
}

// Loader holds the current key material and serves it through Config.
// It is safe for concurrent use.
type Loader struct {
	c      conf.TLS
	log    *slog.Logger
	prompt PromptFunc

	mu       sync.Mutex       // serialises loads; guards the fields below
	prompted []byte           // the -PP password, kept in memory for reloads
	seen     map[string]stamp // content of each watched file at the last load attempt

	cur atomic.Pointer[material]
}

// material is one loaded generation of key material.
type material struct {
	cert      *stdtls.Certificate
	clientCAs *x509.CertPool // nil without tls.client_ca_file
	config    *stdtls.Config // per-handshake config when client CAs are set
}

// stamp identifies a file's content; ok is false when it could not be read.
type stamp struct {
	ok  bool
	sum [sha256.Size]byte
}

// Load checks the configuration, reads the key material once and returns a
// Loader serving it. With -PP (PasswordPrompt) it prompts once, here, and
// keeps the password in memory for reloads. An expired or not yet valid
// certificate is logged as a warning, not refused.
func Load(c conf.TLS, opts ...Option) (*Loader, error) {
	l := &Loader{c: c, log: slog.Default(), prompt: PromptTerminal}
	for _, o := range opts {
		o(l)
	}
	l.log = l.log.With("component", "tls")
	if err := checkConf(c); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.load(true)
	if err != nil {
		return nil, err
	}
	l.cur.Store(m)
	return l, nil
}

// checkConf refuses settings that contradict each other.
func checkConf(c conf.TLS) error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...))
	}
	pem := c.CertFile != "" || c.KeyFile != "" || c.Cert != "" || c.Key != ""
	switch {
	case c.Keystore == "" && !pem:
		bad("no key material: set tls.keystore (-tls), or tls.cert_file and tls.key_file, or tls.cert and tls.key")
	case c.Keystore != "" && pem:
		bad("set either tls.keystore (-tls) or the PEM settings (tls.cert_file, tls.key_file, tls.cert, tls.key), not both")
	}
	if c.CertFile != "" && c.Cert != "" {
		bad("set either tls.cert_file or the inline tls.cert, not both")
	}
	if c.KeyFile != "" && c.Key != "" {
		bad("set either tls.key_file or the inline tls.key, not both")
	}
	if (c.KeyFile != "" || c.Key != "") && c.CertFile == "" && c.Cert == "" {
		bad("a private key is set but no certificate (tls.cert_file or tls.cert)")
	}
	n := 0
	for _, set := range []bool{c.Password != "", c.PasswordFile != "", c.PasswordPrompt} {
		if set {
			n++
		}
	}
	if n > 1 {
		bad("set only one of the password (-P, tls.password), the password file (-PF, tls.password_file) and the prompt (-PP)")
	}
	return errors.Join(errs...)
}

// Config returns the server configuration: TLS 1.2 at least, Go's default
// cipher suites, HTTP/2 and HTTP/1.1 by ALPN, and the certificate read
// anew from the Loader for every handshake, so that a reload changes what
// new connections get and leaves established ones alone. With
// tls.client_ca_file it asks for a client certificate and verifies one if
// given (see ClientCertVerified); the CA pool follows reloads too.
func (l *Loader) Config() *stdtls.Config {
	if l.c.ClientCAFile == "" {
		return l.newConfig(nil)
	}
	cfg := l.newConfig(l.cur.Load().clientCAs)
	cfg.GetConfigForClient = func(*stdtls.ClientHelloInfo) (*stdtls.Config, error) {
		return l.cur.Load().config, nil
	}
	return cfg
}

// newConfig builds a server config; pool non-nil turns on client certificates.
func (l *Loader) newConfig(pool *x509.CertPool) *stdtls.Config {
	cfg := &stdtls.Config{
		MinVersion:     stdtls.VersionTLS12,
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: l.getCertificate,
	}
	if pool != nil {
		cfg.ClientAuth = stdtls.VerifyClientCertIfGiven
		// crypto/tls checks a resumed session's chains against this
		// config's ClientCAs too, so a CA removed by a reload loses its
		// rights at once, not when its session tickets expire.
		cfg.ClientCAs = pool
	}
	return cfg
}

func (l *Loader) getCertificate(*stdtls.ClientHelloInfo) (*stdtls.Certificate, error) {
	return l.cur.Load().cert, nil
}

// ClientCertVerified reports whether the request came over TLS with a
// client certificate that verified against tls.client_ca_file. The server
// lets such a request stand in for the admin credential.
func ClientCertVerified(r *http.Request) bool {
	return r != nil && ConnectionVerified(r.TLS)
}

// ConnectionVerified is ClientCertVerified for a connection state.
func ConnectionVerified(cs *stdtls.ConnectionState) bool {
	return cs != nil && len(cs.VerifiedChains) > 0 && len(cs.PeerCertificates) > 0
}

// Certificate returns the certificate now served.
func (l *Loader) Certificate() *stdtls.Certificate { return l.cur.Load().cert }

// Leaf returns the parsed server certificate now served.
func (l *Loader) Leaf() *x509.Certificate { return l.cur.Load().cert.Leaf }

// NotAfter returns the expiry of the certificate now served, for metrics.
func (l *Loader) NotAfter() time.Time { return l.Leaf().NotAfter }

// Reload reads the key material again from the same sources (for SIGHUP).
// A -PP password is reused, never prompted for again. On failure the
// previous certificate stays in service; the error, which names the file
// and the step, is returned and also logged, so callers need not log it.
func (l *Loader) Reload() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	m, err := l.load(false)
	if err != nil {
		l.log.Error("tls reload failed; still serving the previous certificate", "err", err)
		return fmt.Errorf("tls reload failed, still serving the previous certificate: %w", err)
	}
	l.cur.Store(m)
	return nil
}

// ReloadInterval is the polling interval Watch uses when given none:
// tls.reload_interval, or DefaultReloadInterval when that is unset. A
// negative tls.reload_interval turns watching off and gives 0.
func (l *Loader) ReloadInterval() time.Duration {
	switch d := l.c.ReloadInterval.Duration; {
	case d < 0:
		return 0
	case d == 0:
		return DefaultReloadInterval
	default:
		return d
	}
}

// Watch polls the key material files (keystore, certificate, key, password
// file, client CA file) every interval and reloads when the content of any
// has changed, been removed or reappeared; interval <= 0 means
// ReloadInterval(). It compares SHA-256 of the contents, so a touch alone
// does not reload and a same-second rewrite is not missed. A failed reload
// is retried only after the files change again, so a half-written pair
// (new certificate, old key) is picked up once the second file lands. Watch
// blocks until ctx is done; run it in its own goroutine. Inline PEM
// (tls.cert, tls.key) has no file and changes only with a restart.
func (l *Loader) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = l.ReloadInterval()
	}
	if interval <= 0 || len(l.watchedFiles()) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if l.changed() {
				l.log.Info("tls key material changed on disk; reloading")
				_ = l.Reload() // logs its own failure
			}
		}
	}
}

// watchedFiles lists the files the material comes from.
func (l *Loader) watchedFiles() []string {
	var files []string
	for _, f := range []string{l.c.Keystore, l.c.CertFile, l.c.KeyFile, l.c.PasswordFile, l.c.ClientCAFile} {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

func stampFiles(files []string) map[string]stamp {
	m := make(map[string]stamp, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			m[f] = stamp{}
			continue
		}
		m[f] = stamp{ok: true, sum: sha256.Sum256(b)}
	}
	return m
}

// changed reports whether any watched file differs from the last load attempt.
func (l *Loader) changed() bool {
	now := stampFiles(l.watchedFiles())
	l.mu.Lock()
	defer l.mu.Unlock()
	for f, s := range now {
		if l.seen[f] != s {
			return true
		}
	}
	return false
}

// load reads every source once and builds a new generation. The files are
// stamped before they are read: if one changes in between, the next poll
// sees the difference and loads again. mayPrompt is true only in Load.
// l.mu must be held.
func (l *Loader) load(mayPrompt bool) (*material, error) {
	l.seen = stampFiles(l.watchedFiles())
	c := l.c
	var (
		b       *bundle
		certSrc string // where the certificate came from, for messages
		keySrc  string
	)
	if c.Keystore != "" {
		var err error
		certSrc = "keystore " + c.Keystore
		keySrc = certSrc
		b, err = l.loadKeystore(mayPrompt)
		if err != nil {
			return nil, err
		}
	} else {
		certPEM, keyPEM := []byte(c.Cert), []byte(c.Key)
		certSrc, keySrc = "inline tls.cert", "inline tls.key"
		if c.CertFile != "" {
			var err error
			certSrc = "certificate file " + c.CertFile
			if certPEM, err = os.ReadFile(c.CertFile); err != nil {
				return nil, fmt.Errorf("cannot read certificate file: %w", err)
			}
		}
		if c.KeyFile != "" {
			var err error
			keySrc = "key file " + c.KeyFile
			l.warnPerms(c.KeyFile, "key file")
			if keyPEM, err = os.ReadFile(c.KeyFile); err != nil {
				return nil, fmt.Errorf("cannot read key file: %w", err)
			}
		}
		if len(keyPEM) == 0 { // key and chain in one PEM
			keyPEM, keySrc = certPEM, certSrc
		}
		var err error
		b, err = l.decodePEM(certPEM, keyPEM, certSrc, keySrc, mayPrompt)
		if err != nil {
			return nil, err
		}
	}
	cert, err := buildCertificate(b, certSrc, keySrc)
	if err != nil {
		return nil, err
	}
	m := &material{cert: cert}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read client CA file: %w", err)
		}
		cas, err := parseCertsPEM(pem)
		if err != nil {
			return nil, fmt.Errorf("cannot parse client CA file %s: %w", c.ClientCAFile, err)
		}
		if len(cas) == 0 {
			return nil, fmt.Errorf("cannot load client CA file %s: %w (no PEM CERTIFICATE block%s)", c.ClientCAFile, ErrNoCertificate, notPEMHint(pem))
		}
		m.clientCAs = x509.NewCertPool()
		for _, ca := range cas {
			m.clientCAs.AddCert(ca)
		}
		m.config = l.newConfig(m.clientCAs)
	}
	l.logLoaded(b.chain, certSrc)
	return m, nil
}

// password returns the keystore password and whether it was configured
// (as opposed to the original's default). mayPrompt allows -PP to prompt.
func (l *Loader) password(mayPrompt bool, what string) (pw []byte, explicit bool, err error) {
	c := l.c
	switch {
	case c.Password != "":
		return []byte(c.Password), true, nil
	case c.PasswordFile != "":
		pw, err := readPasswordFile(c.PasswordFile)
		if err != nil {
			return nil, true, err
		}
		return pw, true, nil
	case c.PasswordPrompt:
		if l.prompted == nil {
			if !mayPrompt {
				return nil, true, fmt.Errorf("%s needs a password, but the prompt (-PP) only runs at start-up; restart sks", what)
			}
			pw, err := l.prompt(fmt.Sprintf("Password for %s: ", what))
			if err != nil {
				return nil, true, err
			}
			l.prompted = pw
		}
		return l.prompted, true, nil
	}
	return []byte(DefaultPassword), false, nil
}

// loadKeystore reads tls.keystore, the original's -tls, as PKCS12, JKS or PEM.
func (l *Loader) loadKeystore(mayPrompt bool) (*bundle, error) {
	path := l.c.Keystore
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read keystore: %w", err)
	}
	l.warnPerms(path, "keystore")
	f := detectFormat(data)
	switch f {
	case formatJCEKS:
		return nil, fmt.Errorf("cannot load keystore %s: %w format JCEKS; convert it with keytool -importkeystore -srckeystore %s -srcstoretype JCEKS -destkeystore %s.p12 -deststoretype PKCS12",
			path, ErrUnsupported, path, path)
	case formatUnknown:
		n := min(len(data), 8)
		return nil, fmt.Errorf("cannot load keystore %s: it is neither PKCS12, JKS nor PEM (it starts with %x; -tls wants a .p12/.pfx or Java keystore): %w",
			path, data[:n], ErrCorrupt)
	case formatPEM:
		return l.decodePEM(data, data, "keystore "+path, "keystore "+path, mayPrompt)
	}
	pw, explicit, err := l.password(mayPrompt, "keystore "+path)
	if err != nil {
		return nil, err
	}
	var b *bundle
	var alias string
	if f == formatPKCS12 {
		b, err = decodePKCS12(data, string(pw))
	} else {
		b, alias, err = decodeJKS(data, string(pw))
	}
	switch {
	case err == ErrWrongPassword:
		hint := ""
		if !explicit {
			hint = fmt.Sprintf("; the default password %q did not fit", DefaultPassword)
		}
		return nil, fmt.Errorf("%w for keystore %s (set -P/-PF/-PP or tls.password_file)%s", ErrWrongPassword, path, hint)
	case err != nil:
		return nil, fmt.Errorf("cannot load keystore %s as %s: %w", path, f, err)
	}
	if alias != "" {
		l.log.Debug("using private key entry", "keystore", path, "alias", alias)
	}
	return b, nil
}

// decodePEM reads a chain from certPEM and a key from keyPEM. The key's
// passphrase is tls.key_passphrase, or else the password from -P, -PF or
// -PP; it is only looked up for an encrypted key.
func (l *Loader) decodePEM(certPEM, keyPEM []byte, certSrc, keySrc string, mayPrompt bool) (*bundle, error) {
	certs, err := parseCertsPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cannot parse %s as PEM: %w", certSrc, err)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("cannot load %s: %w (no PEM CERTIFICATE block%s)", certSrc, ErrNoCertificate, notPEMHint(certPEM))
	}
	pass := func() ([]byte, error) {
		if l.c.KeyPassphrase != "" {
			return []byte(l.c.KeyPassphrase), nil
		}
		pw, explicit, err := l.password(mayPrompt, keySrc)
		if err != nil {
			return nil, err
		}
		if !explicit {
			return nil, errors.New("the key is encrypted but no passphrase is set (set tls.key_passphrase, or -P/-PF/-PP)")
		}
		return pw, nil
	}
	key, err := parseKeyPEM(keyPEM, pass)
	switch {
	case err == ErrWrongPassword:
		return nil, fmt.Errorf("%w for the encrypted private key in %s (set tls.key_passphrase, or -P/-PF/-PP)", ErrWrongPassword, keySrc)
	case errors.Is(err, ErrNoPrivateKey):
		return nil, fmt.Errorf("cannot load %s: %w (no PEM PRIVATE KEY block%s)", keySrc, ErrNoPrivateKey, notPEMHint(keyPEM))
	case err != nil:
		return nil, fmt.Errorf("cannot load the private key from %s: %w", keySrc, err)
	}
	return &bundle{key: key, chain: certs}, nil
}

// notPEMHint explains an input without PEM blocks.
func notPEMHint(b []byte) string {
	switch {
	case len(b) == 0:
		return "; the input is empty"
	case detectFormat(b) == formatPKCS12:
		return "; it looks like DER or PKCS12: give a .p12/.pfx as tls.keystore, or convert DER with openssl x509 -inform der"
	case detectFormat(b) == formatJKS:
		return "; it is a Java keystore: give it as tls.keystore"
	case bytes.Contains(b, []byte("-----BEGIN")):
		return "; the PEM blocks there are of other types, or truncated"
	}
	return ""
}

// buildCertificate checks that the key belongs to the first certificate
// and returns the pair as served.
func buildCertificate(b *bundle, certSrc, keySrc string) (*stdtls.Certificate, error) {
	if len(b.chain) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoCertificate, certSrc)
	}
	signer, ok := b.key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: private key type %T in %s", ErrUnsupported, b.key, keySrc)
	}
	matches := func(c *x509.Certificate) bool {
		pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
		return ok && pub.Equal(signer.Public())
	}
	leaf := b.chain[0]
	if !matches(leaf) {
		for i, c := range b.chain[1:] {
			if matches(c) {
				return nil, fmt.Errorf("%w: the private key from %s belongs to certificate %d (%s) of %s; put the server certificate first, then its intermediates",
					ErrKeyMismatch, keySrc, i+2, c.Subject, certSrc)
			}
		}
		return nil, fmt.Errorf("%w: the private key from %s is not the key of certificate %q (serial %s) from %s",
			ErrKeyMismatch, keySrc, leaf.Subject, leaf.SerialNumber, certSrc)
	}
	cert := &stdtls.Certificate{PrivateKey: signer, Leaf: leaf}
	for _, c := range b.chain {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	return cert, nil
}

// logLoaded logs what is served, and warns about dates: an expired or not
// yet valid certificate is served anyway (clients decide), as is one that
// expires soon.
func (l *Loader) logLoaded(chain []*x509.Certificate, src string) {
	leaf := chain[0]
	fp := sha256.Sum256(leaf.Raw)
	l.log.Info("tls certificate loaded", "source", src, "subject", leaf.Subject.String(),
		"dns_names", leaf.DNSNames, "not_after", leaf.NotAfter, "chain_length", len(chain),
		"sha256", hex.EncodeToString(fp[:8]))
	now := time.Now()
	for i, c := range chain {
		what := "server certificate"
		if i > 0 {
			what = fmt.Sprintf("chain certificate %d", i+1)
		}
		switch {
		case now.After(c.NotAfter):
			l.log.Warn("tls "+what+" has expired; clients will refuse it", "source", src, "subject", c.Subject.String(), "not_after", c.NotAfter)
		case now.Before(c.NotBefore):
			l.log.Warn("tls "+what+" is not yet valid; clients will refuse it", "source", src, "subject", c.Subject.String(), "not_before", c.NotBefore)
		case c.NotAfter.Sub(now) < expirySoon:
			l.log.Warn("tls "+what+" expires soon", "source", src, "subject", c.Subject.String(), "not_after", c.NotAfter)
		}
	}
}

// warnPerms warns when a file holding a private key is readable by group
// or others; with the default keystore password that exposes the key.
func (l *Loader) warnPerms(path, what string) {
	fi, err := os.Stat(path)
	if err == nil && fi.Mode().Perm()&0o044 != 0 {
		l.log.Warn(what+" is readable by group or others; run chmod 600", "path", path, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
	}
}

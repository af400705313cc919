package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sks-server/sks/authn"
	"github.com/sks-server/sks/authn/pam"
	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/jwtauth"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/secretfile"
	sksTLS "github.com/sks-server/sks/tls"
	"github.com/sks-server/sks/tokens"
)

// finding is one line of check-config's report.
type finding struct {
	line    int
	warning bool
	msg     string
}

// checkReport collects findings against one file.
type checkReport struct {
	file  string
	lines conf.KeyLines
	list  []finding
}

func (r *checkReport) add(key []string, warning bool, format string, args ...any) {
	r.list = append(r.list, finding{line: r.lines.Line(key), warning: warning, msg: fmt.Sprintf(format, args...)})
}

func (r *checkReport) errorsCount() int {
	n := 0
	for _, f := range r.list {
		if !f.warning {
			n++
		}
	}
	return n
}

// write prints the findings in file order, as compilers do: FILE:LINE: msg.
func (r *checkReport) write(w io.Writer) {
	sort.SliceStable(r.list, func(i, j int) bool { return r.list[i].line < r.list[j].line })
	for _, f := range r.list {
		where := r.file
		if f.line > 0 {
			where = fmt.Sprintf("%s:%d", r.file, f.line)
		}
		kind := "error"
		if f.warning {
			kind = "warning"
		}
		// A message may span lines (joined errors); indent the rest.
		msg := strings.ReplaceAll(f.msg, "\n", "\n    ")
		fmt.Fprintf(w, "%s: %s: %s\n", where, kind, msg)
	}
}

// warnCollector is a slog handler that keeps WARN and ERROR records, so
// the warnings modules log while opening (a PAM stack that cannot work
// unprivileged, an LDAP URL in clear text) become check-config findings.
type warnCollector struct {
	mu    *sync.Mutex
	attrs []slog.Attr
	recs  *[]string
	mods  *[]string
}

func newWarnCollector() *warnCollector {
	return &warnCollector{mu: &sync.Mutex{}, recs: &[]string{}, mods: &[]string{}}
}

func (c *warnCollector) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (c *warnCollector) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	module := ""
	add := func(a slog.Attr) bool {
		if a.Key == "module" && module == "" {
			module = a.Value.String()
		}
		if a.Key == "fix" || a.Key == "err" || a.Key == "error" || a.Key == "url" {
			fmt.Fprintf(&b, " (%s: %s)", a.Key, a.Value.String())
		}
		return true
	}
	for _, a := range c.attrs {
		add(a)
	}
	r.Attrs(add)
	c.mu.Lock()
	*c.recs = append(*c.recs, b.String())
	*c.mods = append(*c.mods, module)
	c.mu.Unlock()
	return nil
}

func (c *warnCollector) WithAttrs(as []slog.Attr) slog.Handler {
	n := *c
	n.attrs = append(append([]slog.Attr{}, c.attrs...), as...)
	return &n
}

func (c *warnCollector) WithGroup(string) slog.Handler { return c }

// drain returns the collected records and their module names, and forgets them.
func (c *warnCollector) drain() (msgs, modules []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs, modules = *c.recs, *c.mods
	*c.recs, *c.mods = nil, nil
	return msgs, modules
}

func runCheckConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "/etc/sks/sks.toml", "configuration file to check")
	fs.StringVar(file, "config", "/etc/sks/sks.toml", "same as -c")
	connect := fs.Bool("connect", false, "also connect to each LDAP directory, Kerberos KDC and Redis store")
	timeout := fs.Duration("timeout", 5*time.Second, "bound for each connection check")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sks check-config [-c FILE] [--connect] [--timeout 5s]\n\n"+
			"Checks a configuration as the server would load it and prints every problem as\n"+
			"FILE:LINE: error|warning: message. Exit status 0 when there are no errors, 1 otherwise.")
		fs.PrintDefaults()
	}
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (give the file with -c)", fs.Arg(0))
	}
	r, err := CheckConfig(ctx, *file, *connect, *timeout)
	if err != nil {
		return err
	}
	r.write(stdout)
	if n := r.errorsCount(); n > 0 {
		return fmt.Errorf("%s: %d error(s)", *file, n)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *file)
	return nil
}

// CheckConfig checks the configuration file as "sks serve -c file" would
// load it, collecting every problem instead of stopping at the first. It
// returns an error only when the file cannot be read at all.
func CheckConfig(ctx context.Context, file string, connect bool, timeout time.Duration) (*checkReport, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("cannot read configuration: %w", err)
	}
	r := &checkReport{file: file, lines: conf.LocateKeys(string(src))}
	cfg, err := conf.Parse(strings.NewReader(string(src)))
	var pe toml.ParseError
	var pl conf.ProblemList
	switch {
	case errors.As(err, &pe):
		r.list = append(r.list, finding{line: pe.Position.Line, msg: pe.Message})
		return r, nil
	case errors.As(err, &pl):
		for _, p := range pl {
			r.add(p.Key, false, "%s", p.Msg)
		}
	case err != nil:
		r.add(nil, false, "%s", err.Error())
	}
	if cfg == nil {
		return r, nil
	}
	if errors.As(cfg.ValidateModules(), &pl) {
		for _, p := range pl {
			r.add(p.Key, false, "%s", p.Msg)
		}
	}
	checkDeep(ctx, cfg, r, connect, timeout)
	return r, nil
}

// checkDeep opens what the server would open at start: every module, the
// secret files, TLS material and signing keys.
func checkDeep(ctx context.Context, cfg *conf.Config, r *checkReport, connect bool, timeout time.Duration) {
	wc := newWarnCollector()
	log := slog.New(wc)
	collect := func(key []string) {
		msgs, _ := wc.drain()
		for _, m := range msgs {
			r.add(key, true, "%s", m)
		}
	}

	names := make([]string, 0, len(cfg.Modules))
	for n := range cfg.Modules {
		names = append(names, n)
	}
	sort.Strings(names)
	var checkers []realms.NamedChecker
	for _, n := range names {
		m, err := realms.OpenModule(cfg, n, log)
		collect([]string{"modules", n})
		if err != nil {
			r.add(moduleKey(n, err), false, "module %s: %s", n, strings.TrimPrefix(err.Error(), "module "+n+": "))
			continue
		}
		if c, ok := m.(io.Closer); ok {
			defer c.Close()
		}
		if c, ok := m.(authn.Checker); ok {
			checkers = append(checkers, realms.NamedChecker{Name: n, Checker: c})
		}
	}
	checkPAMRealms(cfg, r, log, collect)

	secret := func(key []string, what, path string) {
		if path == "" {
			return
		}
		if _, err := secretfile.ReadOf(what, path); err != nil {
			r.add(key, false, "%s", err.Error())
		}
	}
	secret([]string{"admin", "token_file"}, "admin token_file", cfg.Admin.TokenFile)
	secret([]string{"encryption_key_file"}, "encryption_key_file", cfg.EncryptionKeyFile)
	if rc := cfg.Tokens.Redis; rc != nil {
		secret([]string{"tokens", "redis", "password_file"}, "redis password_file", rc.PasswordFile)
	}
	if cfg.TLS.Enabled() {
		if _, err := sksTLS.Load(cfg.TLS, sksTLS.WithLogger(log)); err != nil {
			r.add([]string{"tls"}, false, "tls: %s", err.Error())
		}
		collect([]string{"tls"})
	}
	if _, err := jwtauth.Open(cfg.JWT, log); err != nil {
		r.add([]string{"jwt"}, false, "jwt: %s", err.Error())
	}
	collect([]string{"jwt"})
	if cfg.Audit.Path != "" && cfg.Audit.Path != "-" {
		if st, err := os.Stat(filepath.Dir(cfg.Audit.Path)); err != nil || !st.IsDir() {
			r.add([]string{"audit", "path"}, true, "audit path %s: directory %s does not exist (systemd's LogsDirectory= creates /var/log/sks)", cfg.Audit.Path, filepath.Dir(cfg.Audit.Path))
		}
	}

	if !connect {
		return
	}
	for _, c := range checkers {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.Check(cctx)
		cancel()
		if err != nil {
			r.add([]string{"modules", c.Name}, false, "module %s: backend not reachable: %s", c.Name, err.Error())
		}
	}
	if rc := cfg.Tokens.Redis; rc != nil {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		s, err := tokens.OpenRedis(cctx, *rc, nil)
		cancel()
		if err != nil {
			r.add([]string{"tokens", "redis"}, false, "redis: %s", err.Error())
		} else {
			s.Close()
		}
	}
}

// moduleKey points a module's error at the setting it names, when the
// error is about an unknown setting, else at the section.
func moduleKey(name string, err error) []string {
	const unknown = "unknown setting "
	if _, rest, ok := strings.Cut(err.Error(), unknown); ok {
		first, _, _ := strings.Cut(rest, ",")
		return append([]string{"modules", name}, strings.Split(strings.TrimSpace(first), ".")...)
	}
	return []string{"modules", name}
}

// checkPAMRealms opens the implicit PAM module of each realm section that
// may log in through it, as the first login there would: a missing service
// file, or a pam_unix stack the process cannot use, is reported now.
func checkPAMRealms(cfg *conf.Config, r *checkReport, log *slog.Logger, collect func([]string)) {
	if _, ok := cfg.Modules["pam"]; ok {
		return
	}
	names := make([]string, 0, len(cfg.Realms))
	for n := range cfg.Realms {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	for _, name := range names {
		rc := cfg.Realms[name]
		def := rc.Default
		if def == "" {
			def = cfg.DefaultModule
		}
		usesPAM := strings.EqualFold(def, "pam")
		for _, m := range rc.Modules {
			usesPAM = usesPAM || strings.EqualFold(m, "pam")
		}
		if !usesPAM {
			continue
		}
		svc := rc.PAMService
		if svc == "" {
			svc = cfg.PAMApp
		}
		if svc == "" && name != "*" {
			svc = name
		}
		if svc == "" || seen[svc] {
			continue
		}
		seen[svc] = true
		key := []string{"realms", name}
		if rc.PAMService != "" {
			key = append(key, "pam_service")
		}
		if _, err := pam.Open(pam.Config{Service: svc, Dir: cfg.PAMDir}, log); err != nil {
			r.add(key, true, "realm %s: logins through pam will be refused: %s", name, err.Error())
		}
		collect(key)
	}
}

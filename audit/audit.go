// Package audit writes sks's audit log: one JSON object per line for every
// login attempt and every token or group event, never a token or password.
//
// Each line is written with a single write(2) on a file opened O_APPEND,
// before the server answers the request; with Sync set it is also fsync'd,
// so that an acknowledged login survives a crash of the machine. Without
// Sync a line survives a crash of sks (it is in the kernel) but may be lost
// if the machine goes down within the kernel's writeback delay.
//
// With FailClosed a state change must not happen without its line: the
// server calls Reserve before it changes anything, which preallocates room
// at the end of the file (fallocate, keeping its size), so the lines written
// after the change cannot fail for lack of space.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Event is one audit line. Token is a short hash of a token, never a token.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   string    `json:"kind"`
	Realm  string    `json:"realm,omitempty"`
	User   string    `json:"user,omitempty"`
	Source string    `json:"source,omitempty"`
	Module string    `json:"module,omitempty"`
	Client string    `json:"client,omitempty"`
	Token  string    `json:"token,omitempty"`
	Detail string    `json:"detail,omitempty"`
	// TookMS is how long a login took, in milliseconds.
	TookMS int64 `json:"took_ms,omitempty"`
}

// Kinds written by this package; the server's events keep their own kinds
// (issue, supersede, replace, revoke, revoke_all, stored, gen_key,
// create_group, mod_group). A revoke_all line (sign out everywhere, or an
// admin's sks sessions revoke) follows one revoke line per ended session and
// says who asked in Detail: "by=self" or "by=admin=<credential>".
const (
	// KindLogin is a successful login.
	KindLogin = "login"
	// KindLoginFailed is a wrong password, unknown user or refused module.
	KindLoginFailed = "login_failed"
	// KindLoginError is a login that failed in the backend (server down).
	KindLoginError = "login_error"
	// KindBan is a brute-force ban.
	KindBan = "ban"
)

const (
	maxLineBytes     = 64 << 10
	defaultFileMode  = 0o600
	openFlags        = os.O_WRONLY | os.O_APPEND | os.O_CREATE
	stdoutPathMarker = "-"

	// Reserve keeps at least reserveLow bytes preallocated past the end of
	// the file, room for a few hundred lines of requests in flight,
	// allocating reserveChunk at a time (or just reserveLow when the disk
	// has no more).
	reserveLow   = 256 << 10
	reserveChunk = 1 << 20
)

// Config configures a Log.
type Config struct {
	// Path is the file to append to; "-" writes to standard output (for
	// journald). Required.
	Path string
	// FailClosed makes Write return an error when a line cannot be written,
	// so that the server fails the request (503) rather than act unrecorded.
	// When false, the failure is logged and the request goes on.
	FailClosed bool
	// Sync fsyncs each line before Write returns.
	Sync bool
	// Logger receives write failures.
	Logger *slog.Logger
	// Now replaces the clock in tests.
	Now func() time.Time
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	c  Config
	mu sync.Mutex
	w  io.Writer
	f  *os.File // nil for standard output
	// reservedEnd is the file offset up to which space is preallocated.
	reservedEnd int64
}

// Open opens (creating with mode 0600) the audit log.
func Open(c Config) (*Log, error) {
	if c.Path == "" {
		return nil, errors.New("audit log: no path")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	l := &Log{c: c}
	if c.Path == stdoutPathMarker {
		l.w = os.Stdout
		return l, nil
	}
	f, err := os.OpenFile(c.Path, openFlags, defaultFileMode)
	if err != nil {
		return nil, fmt.Errorf("cannot open audit log: %w", err)
	}
	l.f, l.w = f, f
	return l, nil
}

// Reopen closes and reopens the file, for logrotate (call it on SIGHUP). If
// the file cannot be reopened the old one stays in use and the error is
// returned.
func (l *Log) Reopen() error {
	if l.f == nil {
		return nil
	}
	f, err := os.OpenFile(l.c.Path, openFlags, defaultFileMode)
	if err != nil {
		return fmt.Errorf("cannot reopen audit log: %w", err)
	}
	l.mu.Lock()
	old := l.f
	l.f, l.w = f, f
	l.reservedEnd = 0
	l.mu.Unlock()
	return old.Close()
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f, l.w = nil, errWriter{}
	return err
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, os.ErrClosed }

// Write appends one line for e, stamping its time if unset. With
// FailClosed it returns an error when the line was not written (and
// synced, with Sync).
func (l *Log) Write(e Event) error {
	if e.Time.IsZero() {
		e.Time = l.c.Now()
	}
	e.Time = e.Time.UTC()
	b, err := json.Marshal(e)
	if err != nil {
		return l.failed(e, fmt.Errorf("cannot encode audit event: %w", err))
	}
	if len(b) > maxLineBytes {
		e.Detail = "(truncated)"
		b, _ = json.Marshal(e)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		return l.failed(e, fmt.Errorf("cannot write audit log: %w", err))
	}
	if l.c.Sync && l.f != nil {
		if err := l.f.Sync(); err != nil {
			return l.failed(e, fmt.Errorf("cannot sync audit log: %w", err))
		}
	}
	return nil
}

// Reserve makes sure the lines of a state change can be written once the
// change is made: with FailClosed it preallocates room at the end of the
// file and returns an error when there is none (the server then answers
// 503 and changes nothing). Without FailClosed, or on standard output, it
// does nothing.
func (l *Log) Reserve() error {
	if !l.c.FailClosed {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		if _, ok := l.w.(errWriter); ok {
			return l.reserveFailed(os.ErrClosed)
		}
		return nil // standard output
	}
	fi, err := l.f.Stat()
	if err != nil {
		return l.reserveFailed(fmt.Errorf("cannot stat audit log: %w", err))
	}
	size := fi.Size()
	if l.reservedEnd-size >= reserveLow {
		return nil
	}
	fd := int(l.f.Fd())
	n := int64(reserveChunk)
	err = unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, size, n)
	if errors.Is(err, unix.ENOSPC) {
		n = reserveLow
		err = unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, size, n)
	}
	if errors.Is(err, unix.EOPNOTSUPP) {
		// A file system without fallocate: the lines are written without
		// a reservation (a full disk then fails them after the change).
		return nil
	}
	if err != nil {
		return l.reserveFailed(fmt.Errorf("cannot reserve space in audit log: %w", err))
	}
	l.reservedEnd = size + n
	return nil
}

func (l *Log) reserveFailed(err error) error {
	l.c.Logger.Error("audit log has no room: refusing changes", "path", l.c.Path, "err", err)
	return err
}

func (l *Log) failed(e Event, err error) error {
	l.c.Logger.Error("audit event lost", "kind", e.Kind, "realm", e.Realm, "user", e.User, "err", err)
	if l.c.FailClosed {
		return err
	}
	return nil
}

// Login records a login attempt; its signature is the server's AfterLogin
// hook. The password is never passed here. A write failure is logged; the
// request is failed by the following issue event instead (fail closed).
func (l *Log) Login(realm, user, client, module string, ok bool, err error, took time.Duration) {
	e := Event{Kind: KindLogin, Realm: realm, User: user, Client: client, Module: module, TookMS: took.Milliseconds()}
	switch {
	case err != nil:
		e.Kind, e.Detail = KindLoginError, err.Error()
	case !ok:
		e.Kind = KindLoginFailed
	}
	_ = l.Write(e)
}

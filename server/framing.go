package server

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// Request smuggling (RFC 9112 §6.1, §6.3, §5.2): a request whose body
// length two HTTP parsers could read differently must be refused and its
// connection closed, or a proxy in front of sks and sks may disagree where
// the next request starts. Go's net/http already refuses duplicate
// Content-Length values, transfer codings other than one "chunked", a
// Content-Length that is not a plain number and invalid header names. It
// accepts, and hides from handlers, three shapes: Content-Length together
// with Transfer-Encoding (it drops Content-Length), Transfer-Encoding on an
// HTTP/1.0 request (it drops Transfer-Encoding and uses Content-Length) and
// obs-fold continuation lines (it joins them). Since the handler cannot see
// these, StrictFraming reads the raw header blocks as they arrive on the
// connection.

// StrictFraming makes srv answer 400 and close the connection for a request
// with ambiguous framing. It wraps srv.Handler and srv.ConnContext and
// returns ln wrapped so that it can see raw HTTP/1 header blocks. With tls
// set, srv serves ln with TLS, which hides the plain text from the wrapper:
// then ln is returned unchanged and every HTTP/1 request with a chunked
// body is answered with its connection closed instead, so that nothing
// after an ambiguous body is read as a request.
func StrictFraming(srv *http.Server, ln net.Listener, tls bool, log *slog.Logger) net.Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	next := srv.Handler
	if next == nil {
		next = http.DefaultServeMux
	}
	srv.Handler = framingHandler{next: next, log: log}
	if tls {
		return ln
	}
	prev := srv.ConnContext
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if prev != nil {
			ctx = prev(ctx, c)
		}
		if fc, ok := c.(*framedConn); ok {
			ctx = context.WithValue(ctx, framedConnKey{}, fc)
		}
		return ctx
	}
	return framedListener{ln}
}

type framedConnKey struct{}

type framingHandler struct {
	next http.Handler
	log  *slog.Logger
}

func (h framingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		fc, _ := r.Context().Value(framedConnKey{}).(*framedConn)
		if fc == nil {
			if len(r.TransferEncoding) > 0 {
				w.Header().Set("Connection", "close")
			}
		} else {
			switch reason, lost := fc.verdict(); {
			case reason != "":
				h.log.Warn("request refused: ambiguous framing", "reason", reason, "remote", r.RemoteAddr)
				w.Header().Set("Connection", "close")
				reply(w, http.StatusBadRequest, "ERR: ambiguous request framing: "+reason+"\n")
				return
			case lost:
				w.Header().Set("Connection", "close")
			}
		}
	}
	h.next.ServeHTTP(w, r)
}

type framedListener struct{ net.Listener }

func (l framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framedConn{Conn: c}, nil
}

// framedConn follows the HTTP/1 framing of the bytes read from it, as Go's
// server frames them, and judges each request's header block.
type framedConn struct {
	net.Conn
	mu      sync.Mutex
	p       framer
	handled int // requests handed to the handler so far
}

func (c *framedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.p.feed(b[:n])
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite lets net/http half-close before closing, so that a client
// still reads a 400 sent while its further bytes are unread.
func (c *framedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// verdict judges the next request handed to the handler (net/http serves
// one connection's requests in order): reason is non-empty if its framing
// is ambiguous; lost reports that the framer no longer knows where requests
// start, so the connection should close after this answer.
func (c *framedConn) verdict() (reason string, lost bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.handled
	c.handled++
	return c.p.judge(i)
}

// Framer states.
const (
	fRequestLine = iota
	fHeader
	fBody
	fChunkSize
	fChunkData
	fChunkEnd
	fTrailer
	fStopped
)

const (
	maxFramerLine = 64 << 10 // longer than net/http's header limit: it refuses first
	maxChunkLine  = 4096     // net/http's limit for a chunk-size line
)

// framer is an incremental HTTP/1 request framer. It numbers requests as
// their header blocks end. After a bad request it stops; on input it cannot
// follow (which net/http refuses too) it stops and reports the rest lost.
type framer struct {
	state   int
	line    []byte // an unfinished line carried between reads
	count   int    // header blocks complete
	bad     int    // index of the request with ambiguous framing, or -1
	badWhy  string
	lostAt  int   // index from which framing is unknown, or -1
	remain  int64 // body or chunk bytes to skip
	http10  bool
	cl, te  int // Content-Length and Transfer-Encoding lines
	teValue []byte
	folded  bool
	started bool
}

func (f *framer) init() {
	if !f.started {
		f.started, f.bad, f.lostAt = true, -1, -1
	}
}

// judge reports on request i.
func (f *framer) judge(i int) (string, bool) {
	f.init()
	if f.bad >= 0 && i >= f.bad {
		return f.badWhy, false
	}
	if f.lostAt >= 0 && i >= f.lostAt || i >= f.count {
		return "", true
	}
	return "", false
}

func (f *framer) lose() {
	f.lostAt, f.state, f.line = f.count, fStopped, nil
}

// feed follows b through the framing.
func (f *framer) feed(b []byte) {
	f.init()
	for len(b) > 0 && f.state != fStopped {
		switch f.state {
		case fBody, fChunkData:
			n := int64(len(b))
			if n > f.remain {
				n = f.remain
			}
			f.remain -= n
			b = b[n:]
			if f.remain == 0 {
				if f.state == fBody {
					f.state = fRequestLine
				} else {
					f.state = fChunkEnd
				}
			}
		case fChunkEnd:
			// Exactly CRLF after chunk data, as net/http requires.
			f.line = append(f.line, b[0])
			b = b[1:]
			if len(f.line) == 2 {
				if f.line[0] != '\r' || f.line[1] != '\n' {
					f.lose()
					return
				}
				f.line = f.line[:0]
				f.state = fChunkSize
			}
		default:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				if len(f.line)+len(b) > maxFramerLine {
					f.lose()
					return
				}
				f.line = append(f.line, b...)
				return
			}
			line := b[:i]
			if len(f.line) > 0 {
				if len(f.line)+len(line) > maxFramerLine {
					f.lose()
					return
				}
				f.line = append(f.line, line...)
				line = f.line
			}
			b = b[i+1:]
			f.lineDone(line)
			f.line = f.line[:0]
		}
	}
}

// lineDone handles one line, without its LF, in a line state.
func (f *framer) lineDone(line []byte) {
	switch f.state {
	case fRequestLine:
		line = bytes.TrimSuffix(line, []byte{'\r'})
		j := bytes.LastIndexByte(line, ' ')
		if j < 0 {
			f.lose()
			return
		}
		switch string(line[j+1:]) {
		case "HTTP/1.1":
			f.http10 = false
		case "HTTP/1.0":
			f.http10 = true
		default:
			f.lose() // net/http refuses it, or it is not HTTP/1
			return
		}
		f.cl, f.te, f.folded, f.teValue = 0, 0, false, f.teValue[:0]
		f.state = fHeader
	case fHeader:
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			f.headerEnd()
			return
		}
		if line[0] == ' ' || line[0] == '\t' {
			f.folded = true
			return
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			return // net/http refuses the request
		}
		switch {
		case equalFold(name, "content-length"):
			f.cl++
			if f.cl == 1 {
				f.remain = -1
				if n, ok := parseLength(bytes.TrimSpace(value)); ok {
					f.remain = n
				}
			}
		case equalFold(name, "transfer-encoding"):
			f.te++
			f.teValue = append(f.teValue[:0], bytes.TrimSpace(value)...)
		}
	case fChunkSize:
		if len(line) > maxChunkLine || len(line) == 0 || line[len(line)-1] != '\r' {
			f.lose()
			return
		}
		line = line[:len(line)-1]
		if k := bytes.IndexByte(line, ';'); k >= 0 {
			line = line[:k]
		}
		n, ok := parseHex(bytes.TrimRight(line, " \t"))
		if !ok {
			f.lose()
			return
		}
		if n == 0 {
			f.state = fTrailer
			return
		}
		f.remain, f.state = n, fChunkData
	case fTrailer:
		if len(bytes.TrimSuffix(line, []byte{'\r'})) == 0 {
			f.state = fRequestLine
		}
	}
}

// headerEnd judges a complete header block and sets up its body.
func (f *framer) headerEnd() {
	i := f.count
	f.count++
	why := ""
	switch {
	case f.te > 0 && f.http10:
		why = "Transfer-Encoding in an HTTP/1.0 request"
	case f.te > 0 && f.cl > 0:
		why = "both Content-Length and Transfer-Encoding"
	case f.folded:
		why = "obs-fold header continuation line"
	}
	if why != "" {
		f.bad, f.badWhy, f.state, f.line = i, why, fStopped, nil
		return
	}
	switch {
	case f.te > 0:
		if f.te != 1 || !equalFold(f.teValue, "chunked") {
			f.lose() // net/http answers 501 and closes
			return
		}
		f.state = fChunkSize
	case f.cl > 0:
		if f.remain < 0 {
			f.lose() // net/http refuses a malformed length
			return
		}
		f.state = fBody
		if f.remain == 0 {
			f.state = fRequestLine
		}
	default:
		f.state = fRequestLine
	}
}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseLength reads a decimal Content-Length as net/http does: digits only.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// parseHex reads a chunk size: at most 16 hex digits.
func parseHex(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | int64(c)
	}
	return n, true
}

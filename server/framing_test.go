package server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/realms"
	"github.com/sks-server/sks/tokens"
)

// rawServer runs the real protocol handler behind StrictFraming on a
// loopback listener, as cmd does.
func rawServer(t *testing.T, tls bool) string {
	t.Helper()
	store, err := tokens.OpenBadger(tokens.BadgerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	r, err := realms.Open(conf.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Options{Tokens: tokens.NewService(store), Realms: r})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
	ln = StrictFraming(srv, ln, tls, nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

type rawAnswer struct {
	status int
	body   string
	close  bool
}

// exchange writes raw to a new connection and reads every answer until the
// server closes the connection (closed true) or goes quiet.
func exchange(t *testing.T, addr, raw string) (answers []rawAnswer, closed bool) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if ok := asNetError(err, &ne); ok && ne.Timeout() {
				return answers, false
			}
			return answers, true
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, rawAnswer{resp.StatusCode, string(b), resp.Close})
	}
}

func asNetError(err error, ne *net.Error) bool {
	e, ok := err.(net.Error)
	if ok {
		*ne = e
	}
	return ok
}

const second = "GET /version HTTP/1.1\r\nHost: x\r\n\r\n"

// TestAmbiguousFramingRefused is issue 12.8: each request shape that two
// HTTP parsers could frame differently is answered 400 and its connection
// closed, so the request smuggled after it is never answered. The shapes
// net/http refuses itself are pinned here too.
func TestAmbiguousFramingRefused(t *testing.T) {
	addr := rawServer(t, false)
	for _, c := range []struct {
		name, raw string
		status    int // of the first answer
		why       string
	}{
		{"content-length and chunked", "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second, 400, "both Content-Length and Transfer-Encoding"},
		{"chunked then content-length", "POST /valid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\n" + second, 400, "both"},
		{"content-length and chunked, odd case", "POST /valid HTTP/1.1\r\nHost: x\r\ncontent-length: 5\r\ntransfer-encoding: CHUNKED\r\n\r\n0\r\n\r\n" + second, 400, "both"},
		{"transfer-encoding in http/1.0", "POST /valid HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second, 400, "HTTP/1.0"},
		{"transfer-encoding in http/1.0 without length", "POST /valid HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second, 400, "HTTP/1.0"},
		{"obs-fold", "GET /version HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + second, 400, "obs-fold"},
		{"obs-fold hiding transfer-encoding", "POST /valid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + second, 400, "obs-fold"},
		{"obs-fold with tab", "GET /version HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n" + second, 400, "obs-fold"},
		// Refused by net/http already.
		{"two different content-lengths", "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nContent-Length: 5\r\n\r\nabcdef" + second, 400, ""},
		{"content-length list", "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length: 6, 6\r\n\r\nabcdef" + second, 400, ""},
		{"signed content-length", "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length: +6\r\n\r\nabcdef" + second, 400, ""},
		{"space before colon", "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length : 6\r\n\r\nabcdef" + second, 400, ""},
		{"transfer-encoding gzip", "POST /valid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + second, 501, ""},
		{"transfer-encoding identity", "POST /valid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 6\r\n\r\nabcdef" + second, 501, ""},
		{"two transfer-encoding lines", "POST /valid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second, 501, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			answers, closed := exchange(t, addr, c.raw)
			if len(answers) != 1 || !closed {
				t.Fatalf("got %d answers %+v, closed %v; want one answer and the connection closed", len(answers), answers, closed)
			}
			if answers[0].status != c.status || !strings.Contains(answers[0].body, c.why) {
				t.Fatalf("got %d %q, want %d naming %q", answers[0].status, answers[0].body, c.status, c.why)
			}
		})
	}
}

// TestCleanFramingKeepsConnection: well-framed pipelined requests, with
// bodies by length and chunked, are all answered on one connection.
func TestCleanFramingKeepsConnection(t *testing.T) {
	addr := rawServer(t, false)
	form := "realm=r&token=abc"
	raw := "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 17\r\n\r\n" + form +
		"POST /valid HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nrealm\r\nc\r\n=r&token=abc\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"POST /valid HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nContent-Length: 6\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\nrealm=" +
		"GET /valid?realm=r&token=abc HTTP/1.1\nHost: x\n\n" + // bare LF: RFC 9112 §2.2 lets a recipient accept it
		second
	answers, closed := exchange(t, addr, raw)
	if len(answers) != 5 || closed {
		t.Fatalf("got %+v, closed %v; want 5 answers on an open connection", answers, closed)
	}
	want := []string{"NO\n", "NO\n", "ERR: invalid realm\n", "NO\n", Version + "\n"}
	for i, a := range answers {
		if a.body != want[i] || a.close {
			t.Errorf("answer %d: %d %q close %v, want %q", i, a.status, a.body, a.close, want[i])
		}
	}
}

// TestChunkedOverTLSCloses: where the raw bytes cannot be seen (TLS), an
// HTTP/1 request with a chunked body is answered and its connection closed.
func TestChunkedOverTLSCloses(t *testing.T) {
	addr := rawServer(t, true) // plain listener, but framed as a TLS one would be
	answers, closed := exchange(t, addr, "POST /valid HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n11\r\nrealm=r&token=abc\r\n0\r\n\r\n"+second)
	if len(answers) != 1 || !closed || answers[0].body != "NO\n" {
		t.Fatalf("got %+v closed %v; want NO and the connection closed", answers, closed)
	}
	answers, closed = exchange(t, addr, second+second)
	if len(answers) != 2 || closed {
		t.Fatalf("requests without bodies: got %+v closed %v", answers, closed)
	}
}

// FuzzFramer checks that the framer never panics and judges a stream the
// same whether it arrives at once or byte by byte.
func FuzzFramer(f *testing.F) {
	for _, s := range []string{
		"POST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + second,
		"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + second,
		"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc" + second,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var whole, bytewise framer
		whole.feed([]byte(s))
		for i := 0; i < len(s); i++ {
			bytewise.feed([]byte{s[i]})
		}
		for i := 0; i <= whole.count+1; i++ {
			w1, l1 := whole.judge(i)
			w2, l2 := bytewise.judge(i)
			if w1 != w2 || l1 != l2 {
				t.Fatalf("request %d: whole %q %v, bytewise %q %v", i, w1, l1, w2, l2)
			}
		}
		if whole.count != bytewise.count {
			t.Fatalf("count %d vs %d", whole.count, bytewise.count)
		}
	})
}

// BenchmarkFramer is the framer's cost per typical /valid request.
func BenchmarkFramer(b *testing.B) {
	req := []byte("GET /valid?realm=rcloud&token=9f2c0000000000000000000000000000000000000000000000000000000e41a HTTP/1.1\r\nHost: localhost:4431\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n")
	var f framer
	b.SetBytes(int64(len(req)))
	b.ReportAllocs()
	for b.Loop() {
		f.feed(req)
	}
}

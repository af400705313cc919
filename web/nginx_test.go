package web_test

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/client"
	"github.com/sks-server/sks/testrig"
)

const webConfig = `
[web]
enabled = true
default_realm = "demo"
allowed_return_hosts = ["127.0.0.1"]
[http]
trusted_proxies = ["127.0.0.1"]
`

// nginxConf protects /app/ with auth_request against sks's /forward_auth,
// as docs/web.md shows; the app behind it answers the identity it received.
const nginxConf = `
daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log stderr info;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    upstream sks { server %[3]s; }
    server {
        listen 127.0.0.1:%[2]d;
        location = /_sks {
            internal;
            proxy_pass http://sks/forward_auth?realm=demo;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
        }
        location /app/ {
            auth_request /_sks;
            auth_request_set $sks_user $upstream_http_x_sks_user;
            auth_request_set $sks_roles $upstream_http_x_sks_roles;
            auth_request_set $sks_source $upstream_http_x_sks_source;
            proxy_set_header X-SKS-User $sks_user;
            proxy_set_header X-SKS-Roles $sks_roles;
            proxy_set_header X-SKS-Source $sks_source;
            proxy_pass http://127.0.0.1:%[4]d;%[5]s
        }
        location / {
            proxy_pass http://sks;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }
    }
    # The protected application: it answers the identity nginx passed on.
    server {
        listen 127.0.0.1:%[4]d;
        location /app/uri/ {
            default_type text/plain;
            return 200 "uri=$request_uri\n";
        }
        location / {
            default_type text/plain;
            return 200 "user=$http_x_sks_user roles=$http_x_sks_roles source=$http_x_sks_source\n";
        }
    }
}
`

// loginRedirect, put into /app/ by startNginxLogin, sends a browser without a
// session to the login page and back, as docs/web.md shows: the login URL,
// with the original URI escaped, comes from sks in X-SKS-Login (the
// subrequest passes $request_uri in X-Original-URI, see nginxConf).
const loginRedirect = `
            auth_request_set $sks_login $upstream_http_x_sks_login;
            error_page 401 = @login;
        }
        location @login {
            return 302 $sks_login;`

// returnURIs are request URIs that must survive the trip through the login
// page unchanged. The old snippet (return_to=$request_uri) cut the first
// at "&" and turned %2F into "/".
var returnURIs = []string{
	"/app/uri/report?from=1&to=2",
	"/app/uri/a%2Fb?path=%2Fetc%2Fpasswd&q=a+b%20c",
	"/app/uri//double/./dot/../x?q=%26&r=%3D&s=%25",
	"/app/uri/caf%C3%A9;v=1?x=1;y=2&return_to=//evil.example",
	"/app/uri/",
}

func startNginx(t *testing.T, sksAddr string) string {
	t.Helper()
	return startNginxConf(t, sksAddr, "")
}

// startNginxLogin is startNginx with unauthenticated requests to /app/
// redirected to the login page instead of answered 401.
func startNginxLogin(t *testing.T, sksAddr string) string {
	t.Helper()
	return startNginxConf(t, sksAddr, loginRedirect)
}

func startNginxConf(t *testing.T, sksAddr, appExtra string) string {
	t.Helper()
	testrig.Require(t, "nginx")
	dir := t.TempDir()
	port, appPort := testrig.FreePort(t), testrig.FreePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, sksAddr, appPort, appExtra)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := testrig.Start(t, dir, "nginx", nil, "nginx", "-p", dir, "-c", conf, "-e", "stderr")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p.WaitTCP(t, addr, 10*time.Second)
	return "http://" + addr
}

func get(t *testing.T, url string, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.AddCookie(&http.Cookie{Name: "sks_token", Value: token})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// demoBehindNginx starts sks with webConfig behind nginx and logs the demo
// user in; it returns nginx's URL, a client of sks and the session.
func demoBehindNginx(t *testing.T) (front string, c *client.Client, sess client.Session) {
	t.Helper()
	testrig.Require(t, "nginx")
	sks := testrig.StartSKS(t, webConfig)
	front = startNginx(t, sks.Addr)
	c, err := client.New(sks.URL)
	if err != nil {
		t.Fatal(err)
	}
	sess, err = c.Login(context.Background(), "demo", "demo", sks.DemoPassword, "")
	if err != nil {
		t.Fatal(err)
	}
	return front, c, sess
}

func TestBehindNginx(t *testing.T) {
	front, c, sess := demoBehindNginx(t)
	ctx := context.Background()

	if code, body := get(t, front+"/app/page", sess.Token); code != 200 || body != "user=demo roles=demo source=auth/demo\n" {
		t.Fatalf("valid cookie: got %d %q", code, body)
	}
	if code, _ := get(t, front+"/app/page", ""); code != 401 {
		t.Fatalf("no cookie: got %d, want 401", code)
	}
	if code, _ := get(t, front+"/app/page", strings.Repeat("0", 64)); code != 401 {
		t.Fatalf("unknown token: got %d, want 401", code)
	}
	if ok, err := c.Revoke(ctx, "demo", sess.Token); !ok || err != nil {
		t.Fatalf("revoke: %v %v", ok, err)
	}
	if code, _ := get(t, front+"/app/page", sess.Token); code != 401 {
		t.Fatalf("revoked token: got %d, want 401", code)
	}
}

// TestLoginFlowBehindNginx signs in through the login page of the real
// binary, reaches the protected app, and signs out.
func TestLoginFlowBehindNginx(t *testing.T) {
	testrig.Require(t, "nginx")
	sks := testrig.StartSKS(t, webConfig)
	front := startNginx(t, sks.Addr)
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	resp, err := hc.Get(front + "/login?realm=demo&return_to=/app/page")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("login page: %d %q", resp.StatusCode, b)
	}
	form := url.Values{"realm": {"demo"}, "return_to": {"/app/page"}, "csrf": {m[1]}, "user": {"demo"}, "password": {sks.DemoPassword}}
	resp, err = hc.PostForm(front+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "user=demo roles=demo source=auth/demo\n" {
		t.Fatalf("after login: got %d %q", resp.StatusCode, b)
	}
	if strings.Contains(sks.Output(), sks.DemoPassword) {
		t.Fatal("the server log holds the password")
	}
	resp, err = hc.PostForm(front+"/logout", url.Values{"realm": {"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("after logout: at %s, want /login", resp.Request.URL)
	}
	resp, err = hc.Get(front + "/app/page")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("after logout: got %d, want 401", resp.StatusCode)
	}
}

// TestCrossOriginLogoutBehindNginx (issue 12.11): through nginx, a logout
// posted from another site's page (Origin only, as older browsers send)
// leaves the session alone; the same from this site signs out.
func TestCrossOriginLogoutBehindNginx(t *testing.T) {
	front, c, sess := demoBehindNginx(t)
	ctx := context.Background()
	logout := func(origin string) int {
		req, _ := http.NewRequest("POST", front+"/logout", strings.NewReader("realm=demo"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.AddCookie(&http.Cookie{Name: "sks_token", Value: sess.Token})
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := logout("https://evil.example"); code != http.StatusForbidden {
		t.Fatalf("cross-origin logout: %d, want 403", code)
	}
	if id, err := c.Valid(ctx, "demo", sess.Token); err != nil || id.Status != client.Valid {
		t.Fatalf("after a cross-origin logout: %+v %v, want the session still current", id, err)
	}
	if code := logout(front); code != http.StatusSeeOther {
		t.Fatalf("same-origin logout: %d, want 303", code)
	}
	if id, _ := c.Valid(ctx, "demo", sess.Token); id.Status == client.Valid {
		t.Fatal("same-origin logout left the session current")
	}
}

// TestReturnURIRoundTripBehindNginx: an unauthenticated request to any URI
// is sent to the login page and, after signing in, back to exactly that
// URI, which the application then receives unchanged; with nginx-light and
// the docs/web.md snippet.
func TestReturnURIRoundTripBehindNginx(t *testing.T) {
	testrig.Require(t, "nginx")
	sks := testrig.StartSKS(t, webConfig)
	front := startNginxLogin(t, sks.Addr)
	for _, uri := range returnURIs {
		t.Run(uri, func(t *testing.T) {
			jar, _ := cookiejar.New(nil)
			hc := &http.Client{Jar: jar, Timeout: 10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest("GET", front+uri, nil)
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			loc, err := resp.Location()
			if resp.StatusCode != http.StatusFound || err != nil || loc.Path != "/login" {
				t.Fatalf("GET %s without a session: %d to %q, want 302 to /login", uri, resp.StatusCode, resp.Header.Get("Location"))
			}
			if got := loc.Query().Get("return_to"); got != uri {
				t.Fatalf("return_to %q, want %q (Location %s)", got, uri, resp.Header.Get("Location"))
			}
			resp, err = hc.Get(loc.String())
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(b))
			rt := regexp.MustCompile(`name="return_to" value="([^"]*)"`).FindStringSubmatch(string(b))
			if resp.StatusCode != 200 || m == nil || rt == nil {
				t.Fatalf("login page: %d %q", resp.StatusCode, b)
			}
			form := url.Values{"realm": {"demo"}, "return_to": {html.UnescapeString(rt[1])}, "csrf": {m[1]}, "user": {"demo"}, "password": {sks.DemoPassword}}
			resp, err = hc.PostForm(front+"/login", form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != uri {
				t.Fatalf("after login: %d to %q, want 303 to %q", resp.StatusCode, resp.Header.Get("Location"), uri)
			}
			code, body := func() (int, string) {
				req, _ := http.NewRequest("GET", front+uri, nil)
				resp, err := hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}()
			if code != 200 || body != "uri="+uri+"\n" {
				t.Errorf("the app got %d %q, want 200 %q", code, body, "uri="+uri+"\n")
			}
		})
	}
}

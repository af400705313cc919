package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// chromium runs headless Chromium with args and returns its stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin := testrig.Program(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--window-size=800,600"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errb.String())
	}
	return out.String()
}

// TestLoginPageInChromium renders the login page in a real browser: the DOM
// it builds has the labelled form, and a screenshot is kept as an artifact
// (under $SKS_ARTIFACTS when set).
func TestLoginPageInChromium(t *testing.T) {
	testrig.Require(t, "chromium")
	sks := testrig.StartSKS(t, webConfig)
	page := sks.URL + "/login?realm=demo&return_to=/app/"

	dom := chromium(t, "--dump-dom", page)
	for _, want := range []string{`<label for="user">User name</label>`, `<label for="password">Password</label>`,
		`type="password"`, `name="csrf"`, `<button type="submit">Sign in</button>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %s:\n%s", want, dom)
		}
	}

	dir := artifactDir(t)
	shot := filepath.Join(dir, "login-page.png")
	chromium(t, "--screenshot="+shot, page)
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if len(b) < 2000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("screenshot is %d bytes, not a rendered PNG", len(b))
	}
	t.Logf("login page screenshot: %s", shot)
}

// artifactDir is $SKS_ARTIFACTS when set, else a temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SKS_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// webDriver is a minimal W3C WebDriver client for one chromedriver session.
type webDriver struct {
	t    *testing.T
	base string // http://127.0.0.1:<port>/session/<id>
	hc   *http.Client
}

// wdCall sends a WebDriver command and decodes its "value" into out (if not
// nil). A WebDriver error is returned as an error.
func wdCall(hc *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		return fmt.Errorf("%s %s: %d %.300s", method, url, resp.StatusCode, b)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(env.Value, &e)
		return fmt.Errorf("%s %s: %d %s: %.500s", method, url, resp.StatusCode, e.Error, e.Message)
	}
	if out != nil {
		return json.Unmarshal(env.Value, out)
	}
	return nil
}

// startWebDriver runs chromedriver and opens a headless Chromium session,
// closed when the test ends.
func startWebDriver(t *testing.T) *webDriver {
	t.Helper()
	chrome := testrig.Program(t, "chromium")
	port := testrig.FreePort(t)
	dir := t.TempDir()
	p := testrig.Start(t, dir, "chromedriver", nil, "chromedriver", "--port="+strconv.Itoa(port))
	root := "http://127.0.0.1:" + strconv.Itoa(port)
	hc := &http.Client{Timeout: 60 * time.Second}
	p.WaitFor(t, 20*time.Second, func() error {
		var st struct {
			Ready bool `json:"ready"`
		}
		if err := wdCall(hc, "GET", root+"/status", nil, &st); err != nil {
			return err
		}
		if !st.Ready {
			return errors.New("chromedriver not ready")
		}
		return nil
	})
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chrome,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--user-data-dir=" + filepath.Join(dir, "profile"), "--window-size=1000,800"},
		},
		"timeouts": map[string]int{"pageLoad": 30000, "script": 10000, "implicit": 0},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	if err := wdCall(hc, "POST", root+"/session", caps, &sess); err != nil {
		t.Fatalf("new WebDriver session: %v\n%s", err, p.Output())
	}
	wd := &webDriver{t: t, base: root + "/session/" + sess.SessionID, hc: hc}
	t.Cleanup(func() {
		if err := wdCall(hc, "DELETE", wd.base, nil, nil); err != nil {
			t.Logf("closing WebDriver session: %v", err)
		}
	})
	return wd
}

func (wd *webDriver) do(method, path string, body, out any) {
	wd.t.Helper()
	if err := wdCall(wd.hc, method, wd.base+path, body, out); err != nil {
		wd.t.Fatal(err)
	}
}

func (wd *webDriver) navigate(u string) {
	wd.t.Helper()
	wd.do("POST", "/url", map[string]string{"url": u}, nil)
}

func (wd *webDriver) url() *url.URL {
	wd.t.Helper()
	var s string
	wd.do("GET", "/url", nil, &s)
	u, err := url.Parse(s)
	if err != nil {
		wd.t.Fatalf("browser URL %q: %v", s, err)
	}
	return u
}

// text is the visible text of the page.
func (wd *webDriver) text() string {
	wd.t.Helper()
	var s string
	wd.do("POST", "/execute/sync", map[string]any{"script": "return document.body ? document.body.innerText : '';", "args": []any{}}, &s)
	return s
}

// find returns the id of the element matching a CSS selector.
func (wd *webDriver) find(css string) string {
	wd.t.Helper()
	var el map[string]string
	wd.do("POST", "/element", map[string]string{"using": "css selector", "value": css}, &el)
	id := el["element-6066-11e4-a52e-4f735466cecf"]
	if id == "" {
		wd.t.Fatalf("element %s: no id in %v", css, el)
	}
	return id
}

func (wd *webDriver) typeInto(css, text string) {
	wd.t.Helper()
	wd.do("POST", "/element/"+wd.find(css)+"/value", map[string]string{"text": text}, nil)
}

func (wd *webDriver) click(css string) {
	wd.t.Helper()
	wd.do("POST", "/element/"+wd.find(css)+"/click", map[string]any{}, nil)
}

// waitPage polls until the browser is at path and its text contains want.
func (wd *webDriver) waitPage(path, want string) {
	wd.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var u *url.URL
	var text string
	for {
		u, text = wd.url(), wd.text()
		if u.Path == path && strings.Contains(text, want) {
			return
		}
		if time.Now().After(deadline) {
			wd.t.Fatalf("want %s showing %q; browser at %s showing:\n%s", path, want, u, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// screenshot saves the viewport as a PNG under dir and logs its path.
func (wd *webDriver) screenshot(dir, name string) {
	wd.t.Helper()
	var s string
	wd.do("GET", "/screenshot", nil, &s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) < 2000 || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		wd.t.Fatalf("screenshot %s: %d bytes, %v", name, len(b), err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		wd.t.Fatal(err)
	}
	wd.t.Logf("screenshot: %s", p)
}

// TestLoginFlowInChromium is TestLoginFlowBehindNginx in a real browser
// driven through chromedriver: the protected app sends it to the login page,
// it signs in with the form, sees the app with its identity, signs out with
// the sign-out button, and the app no longer knows it. The cookie is not
// Secure here (plain HTTP, no secure_cookie), so Chromium sends it.
func TestLoginFlowInChromium(t *testing.T) {
	testrig.Require(t, "chromium", "chromedriver", "nginx")
	sks := testrig.StartSKS(t, webConfig)
	front := startNginxLogin(t, sks.Addr)
	dir := artifactDir(t)
	wd := startWebDriver(t)

	wd.navigate(front + "/app/page")
	wd.waitPage("/login", "Sign in")
	if u := wd.url(); u.Query().Get("return_to") != "/app/page" || u.Query().Get("realm") != "demo" {
		t.Fatalf("login page at %s, want realm=demo&return_to=/app/page", u)
	}
	wd.typeInto("#user", "demo")
	wd.typeInto("#password", sks.DemoPassword)
	wd.screenshot(dir, "login.png")
	wd.click(`form[action="/login"] button[type="submit"]`)

	wd.waitPage("/app/page", "user=demo roles=demo source=auth/demo")
	wd.screenshot(dir, "protected.png")
	var session struct {
		Value    string `json:"value"`
		Secure   bool   `json:"secure"`
		HTTPOnly bool   `json:"httpOnly"`
	}
	wd.do("GET", "/cookie/sks_token", nil, &session)
	if session.Value == "" || session.Secure || !session.HTTPOnly {
		t.Fatalf("session cookie: %+v, want an HttpOnly, not Secure token", session)
	}
	if strings.Contains(sks.Output(), sks.DemoPassword) {
		t.Fatal("the server log holds the password")
	}

	wd.navigate(front + "/logout?realm=demo")
	wd.waitPage("/logout", "Sign out")
	wd.click(`form[action="/logout"] button[type="submit"]`)
	wd.waitPage("/login", "Sign in")
	if !strings.Contains(sks.Output(), "web logout") {
		t.Fatalf("sks did not log the logout:\n%s", sks.Output())
	}

	wd.navigate(front + "/app/page")
	wd.waitPage("/login", "Sign in")
	if text := wd.text(); strings.Contains(text, "user=demo") {
		t.Fatalf("after logout the app still shows the identity:\n%s", text)
	}
	wd.screenshot(dir, "after-logout.png")
	// The browser holds no session cookie any more, and sks revoked the
	// session: the old token is sent to the login page too.
	noFollow := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", front+"/app/page", nil)
	req.AddCookie(&http.Cookie{Name: "sks_token", Value: session.Value})
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := resp.Location(); resp.StatusCode != http.StatusFound || loc == nil || loc.Path != "/login" {
		t.Fatalf("revoked token: got %d to %q, want 302 to /login", resp.StatusCode, resp.Header.Get("Location"))
	}
	var cookies []struct {
		Name string `json:"name"`
	}
	wd.do("GET", "/cookie", nil, &cookies)
	for _, c := range cookies {
		if c.Name == "sks_token" {
			t.Fatal("sks_token cookie still set after logout")
		}
	}
}

// TestReturnURIInChromium: a browser sent to the login page from a URI with
// "&", "%2F" and "%26" in its query comes back to exactly that URI after
// signing in, through nginx with the docs/web.md snippet.
func TestReturnURIInChromium(t *testing.T) {
	testrig.Require(t, "chromium", "chromedriver", "nginx")
	sks := testrig.StartSKS(t, webConfig)
	front := startNginxLogin(t, sks.Addr)
	wd := startWebDriver(t)
	const uri = "/app/uri/report?from=1&to=2&path=%2Fetc%2Fx&q=a%26b"

	wd.navigate(front + uri)
	wd.waitPage("/login", "Sign in")
	if got := wd.url().Query().Get("return_to"); got != uri {
		t.Fatalf("login page return_to %q, want %q", got, uri)
	}
	wd.typeInto("#user", "demo")
	wd.typeInto("#password", sks.DemoPassword)
	wd.click(`form[action="/login"] button[type="submit"]`)
	wd.waitPage("/app/uri/report", "uri="+uri)
	if got := wd.url().RequestURI(); got != uri {
		t.Errorf("browser at %q, want %q", got, uri)
	}
}

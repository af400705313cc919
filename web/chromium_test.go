package web_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sks/testrig"
)

// chromium runs headless Chromium with args and returns its stdout.
func chromium(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := testrig.LookPath("chromium")
	if err != nil {
		t.Fatal(err)
	}
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

	dir := os.Getenv("SKS_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
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

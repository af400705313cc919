package cmd

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sks-server/sks/testrig"
)

// startSKS starts the binary with args and waits for its listening line.
func startSKS(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	port := testrig.FreePort(t)
	cmd := exec.Command(sksBinary, append(args, "-l", "127.0.0.1", "-p", fmt.Sprint(port))...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := bufio.NewScanner(stdout)
	want := fmt.Sprintf("SessionKeyServer 1.5 is listening on 127.0.0.1:%d", port)
	for lines.Scan() {
		if lines.Text() == want {
			go io.Copy(io.Discard, stdout)
			return cmd, fmt.Sprintf("http://127.0.0.1:%d", port)
		}
	}
	t.Fatalf("sks exited before listening (wanted %q)", want)
	return nil, ""
}

// TestAcknowledgedTokensSurviveKill9: 64 clients store tokens as fast as
// they can; the server is killed with SIGKILL mid-load; after a restart on
// the same data directory every token that was answered 200 validates.
// (The original lost up to 36% of acknowledged tokens under such a load.)
func TestAcknowledgedTokensSurviveKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, base := startSKS(t, "-d", dir)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	var acked sync.Map
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := fmt.Sprintf("kill9-w%d-i%d", w, i)
				resp, err := client.Get(base + "/stored_token?realm=r&user=u" + fmt.Sprint(w) + "-" + fmt.Sprint(i) + "&token=" + tok)
				if err != nil {
					return // the server is gone
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && strings.HasPrefix(string(body), tok+"\n") {
					acked.Store(tok, "u"+fmt.Sprint(w)+"-"+fmt.Sprint(i))
					n.Add(1)
				}
			}
		}()
	}
	// Kill once a good number of tokens are acknowledged, with writes in flight.
	for n.Load() < 2000 {
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	close(stop)
	wg.Wait()
	total := n.Load()

	_, base = startSKS(t, "-d", dir)
	lost := 0
	acked.Range(func(k, v any) bool {
		resp, err := client.Get(base + "/valid?realm=r&token=" + k.(string))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "YES\n"+v.(string)+"\nstored\n\n" {
			lost++
		}
		return true
	})
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged tokens lost after kill -9", lost, total)
	}
	t.Logf("%d acknowledged tokens, all valid after kill -9 and restart", total)
}

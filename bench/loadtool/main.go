// Command loadtool supports bench/load.sh: it seeds tokens (measuring the
// durable issue rate), serves the "ceiling" (a minimal net/http server
// answering /valid from a Go map), and measures start-up time.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtool seed|ceiling|startup ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "seed":
		err = seed(os.Args[2:])
	case "ceiling":
		err = ceiling(os.Args[2:])
	case "startup":
		err = startup(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %s", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtool:", err)
		os.Exit(1)
	}
}

// seed stores n tokens through /stored_token with c concurrent clients and
// writes them to a file, one a line. Each answer is durable on disk.
func seed(args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:4431", "sks")
	n := fs.Int("n", 10000, "tokens")
	c := fs.Int("c", 32, "concurrent clients")
	out := fs.String("o", "tokens.txt", "output file")
	realm := fs.String("realm", "bench", "realm")
	fs.Parse(args)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c}}
	toks := make([]string, *n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	for range *c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= *n {
					return
				}
				tok := fmt.Sprintf("%064x", uint64(i)*2654435761+uint64(start.UnixNano()))
				resp, err := client.Get(fmt.Sprintf("%s/stored_token?realm=%s&user=user%d&token=%s", *base, *realm, i, tok))
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, body))
					continue
				}
				toks[i] = tok
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if failed.Load() > 0 {
		return fmt.Errorf("%d of %d stores failed; first: %v", failed.Load(), *n, firstErr.Load())
	}
	fmt.Printf("issued %d durable tokens with %d clients in %.2fs: %.0f tokens/s\n", *n, *c, took.Seconds(), float64(*n)/took.Seconds())
	return os.WriteFile(*out, []byte(strings.Join(toks, "\n")+"\n"), 0o600)
}

// ceiling answers /valid with the same body sks would, from a map.
func ceiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ExitOnError)
	addr := fs.String("l", "127.0.0.1:4432", "listen address")
	file := fs.String("tokens", "tokens.txt", "tokens file from seed")
	fs.Parse(args)
	f, err := os.Open(*file)
	if err != nil {
		return err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for i := 0; sc.Scan(); i++ {
		m[sc.Text()] = fmt.Sprintf("YES\nuser%d\nstored\n\n", i)
	}
	f.Close()
	return http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := m[r.URL.Query().Get("token")]
		if !ok {
			body = "NO\n"
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, body)
	}))
}

// startup runs the server command given after "--" several times and
// prints the median time from exec to the first answer of /version.
func startup(args []string) error {
	fs := flag.NewFlagSet("startup", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:4431", "where the server answers")
	runs := fs.Int("runs", 5, "runs")
	fs.Parse(args)
	argv := fs.Args()
	if len(argv) == 0 {
		return fmt.Errorf("usage: loadtool startup -url URL -- command args")
	}
	var times []time.Duration
	for range *runs {
		start := time.Now()
		cmd := exec.Command(argv[0], argv[1:]...)
		if err := cmd.Start(); err != nil {
			return err
		}
		for {
			resp, err := http.Get(*base + "/version")
			if err == nil {
				resp.Body.Close()
				break
			}
			if time.Since(start) > 10*time.Second {
				cmd.Process.Kill()
				return fmt.Errorf("server did not answer within 10s")
			}
			time.Sleep(time.Millisecond)
		}
		times = append(times, time.Since(start))
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	fmt.Printf("start-up to first answer: median %.1f ms over %d runs (min %.1f, max %.1f)\n",
		ms(times[len(times)/2]), *runs, ms(times[0]), ms(times[len(times)-1]))
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

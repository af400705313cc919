package tokens

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// TestBadgerPowerLoss: every acknowledged token survives a power loss,
// including those committed just before a memtable rotation.
//
// The simulation: the store runs on ext4 in a loop device whose backing
// file is copied at the "power loss" while the writer is still alive.
// The copy holds exactly what reached the device: what was fsynced, plus
// whatever the kernel happened to write back, never the dirty pages still
// in the page cache (badger's WAL files are written through mmap and
// written back only when synced, or after the kernel's 30 s expiry). This
// is the state a power cut leaves; mounting the copy replays ext4's journal
// as a reboot would. (Device-mapper, which dm-flakey or dm-log-writes would
// need, is not available here; loop devices are.)
//
// The writer's memtables are tiny and their flush to tables is held back,
// so acknowledged commits sit in the WALs of rotated-out memtables at the
// moment of the cut: db.Sync alone does not cover those files. (Without
// the hold the window lasts the few milliseconds a flush takes, and the
// test would pass by luck.)
func TestBadgerPowerLoss(t *testing.T) {
	if dir := os.Getenv("SKS_POWERLOSS_CHILD"); dir != "" {
		powerLossChild(dir)
		return
	}
	for _, p := range []string{"mkfs.ext4", "losetup", "mount"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("SKS_REQUIRE_BACKENDS") == "1" {
				t.Fatalf("no %s", p)
			}
			t.Skipf("no %s", p)
		}
	}
	if os.Getuid() != 0 {
		if os.Getenv("SKS_REQUIRE_BACKENDS") == "1" {
			t.Fatal("needs root for loop devices")
		}
		t.Skip("needs root for loop devices")
	}
	tmp := t.TempDir()
	img := filepath.Join(tmp, "disk.img")
	run(t, "truncate", "-s", "256M", img)
	run(t, "mkfs.ext4", "-q", "-F", img)
	mnt := filepath.Join(tmp, "mnt")
	os.Mkdir(mnt, 0o700)
	// commit=600: no periodic journal commit during the test; fsync still
	// commits at once.
	umount := loopMount(t, img, mnt, "commit=600")
	dir := filepath.Join(mnt, "store")
	os.Mkdir(dir, 0o700)

	child := exec.Command(os.Args[0], "-test.run=^TestBadgerPowerLoss$", "-test.count=1")
	child.Env = append(os.Environ(), "SKS_POWERLOSS_CHILD="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	}()
	var acked []int
	done := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if line == "done" {
			done = true
			break
		}
		if n, ok := strings.CutPrefix(line, "ack "); ok {
			i, _ := strconv.Atoi(n)
			acked = append(acked, i)
		}
	}
	if !done {
		t.Fatal("writer died before it finished")
	}
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	t.Logf("%d tokens acknowledged; %d WAL files and %d tables at the cut", len(acked), len(mems), len(ssts))
	if len(mems) < 2 {
		t.Fatalf("only %d WAL files: no rotated memtable to test", len(mems))
	}
	// The cut: copy the device while the writer still holds its files.
	cut := filepath.Join(tmp, "cut.img")
	run(t, "cp", "--sparse=always", img, cut)
	child.Process.Kill()
	child.Wait()
	killed = true
	umount()

	mnt2 := filepath.Join(tmp, "mnt2")
	os.Mkdir(mnt2, 0o700)
	loopMount(t, cut, mnt2, "")
	ssts, _ = filepath.Glob(filepath.Join(mnt2, "store", "*.sst"))
	for _, p := range ssts {
		if fi, err := os.Stat(p); err == nil && fi.IsDir() {
			os.Remove(p) // the writer's flush blockers
		}
	}
	s, err := OpenBadger(BadgerOptions{Dir: filepath.Join(mnt2, "store")})
	if err != nil {
		t.Fatalf("open after power loss: %v", err)
	}
	defer s.Close()
	lost := 0
	for _, i := range acked {
		if _, err := s.Get(context.Background(), "r", HashToken(fmt.Sprintf("tok-%d", i))); err != nil {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged tokens lost in the power cut", lost, len(acked))
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

// loopMount mounts the ext4 image img on mnt through a loop device; the
// returned function (also run at cleanup) unmounts it and frees the device.
func loopMount(t *testing.T, img, mnt, opts string) func() {
	t.Helper()
	b, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, b)
	}
	dev := strings.TrimSpace(string(b))
	args := []string{"-t", "ext4"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	if b, err := exec.Command("mount", append(args, dev, mnt)...).CombinedOutput(); err != nil {
		exec.Command("losetup", "-d", dev).Run()
		t.Fatalf("mount: %v: %s", err, b)
	}
	var once sync.Once
	f := func() {
		once.Do(func() {
			exec.Command("umount", mnt).Run()
			exec.Command("losetup", "-d", dev).Run()
		})
	}
	t.Cleanup(f)
	return f
}

// powerLossChild writes tokens from 16 goroutines into a store whose
// memtable flushes are stalled, printing "ack i" for each acknowledged
// token, then "done", and waits to be killed.
func powerLossChild(dir string) {
	s, err := OpenBadger(BadgerOptions{Dir: dir, MinFree: -1, tune: func(o *badger.Options) {
		*o = o.WithMemTableSize(1 << 20).WithNumMemtables(8)
	}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Hold every memtable flush: badger cannot create a table file where
	// a directory of that name is, and retries a second later with the
	// next file number.
	for i := 1; i <= 300; i++ {
		os.Mkdir(filepath.Join(dir, fmt.Sprintf("%06d.sst", i)), 0o700)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	const n, workers = 12000, 16
	for g := range workers {
		wg.Go(func() {
			for i := g; i < n; i += workers {
				user := fmt.Sprintf("user%d", i)
				_, err := s.Issue(context.Background(), "r", HashToken(fmt.Sprintf("tok-%d", i)), Record{User: user, Identity: user + "\npam\n"}, 1)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %d\n", i)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	fmt.Fprintln(w, "done")
	w.Flush()
	time.Sleep(time.Hour)
}

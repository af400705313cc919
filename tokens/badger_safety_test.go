package tokens

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"github.com/sks-server/sks/testrig"
)

// copyDir copies the regular files of a live store's directory: what a
// kill -9 leaves on disk (the page cache is coherent with reads).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func filesWithSuffix(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// issueN issues n tokens "tok-<prefix>-<i>" of n/10 users, each acknowledged.
func issueN(t *testing.T, s *Badger, prefix string, n int) []Hash {
	t.Helper()
	ctx := context.Background()
	hs := make([]Hash, n)
	for i := range n {
		hs[i] = HashToken(fmt.Sprintf("tok-%s-%d", prefix, i))
		user := fmt.Sprintf("u%d", i)
		if _, err := s.Issue(ctx, "r", hs[i], Record{User: user, Identity: user + "\npam\n"}, 1); err != nil {
			t.Fatalf("issue %d: %v", i, err)
		}
	}
	return hs
}

func missing(s *Badger, hs []Hash) int {
	n := 0
	for _, h := range hs {
		if _, err := s.Get(context.Background(), "r", h); err != nil {
			n++
		}
	}
	return n
}

// TestBadgerDamagedStoreRefusesToOpen: each way of losing acknowledged
// data while sks is stopped makes OpenBadger fail with ErrDamaged (no
// panic, no silent start), and Salvage opens what is left.
func TestBadgerDamagedStoreRefusesToOpen(t *testing.T) {
	// crashed returns the directory a kill -9 leaves after n acknowledged
	// tokens, with the tokens' hashes; the WAL holds them (no flush yet).
	crashed := func(t *testing.T, n int) (string, []Hash) {
		live := t.TempDir()
		s, err := OpenBadger(BadgerOptions{Dir: live})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		hs := issueN(t, s, "a", n)
		dir := t.TempDir()
		copyDir(t, live, dir)
		return dir, hs
	}
	// closed returns a cleanly closed store holding n tokens in tables.
	closed := func(t *testing.T, n int) (string, []Hash) {
		dir := t.TempDir()
		s, err := OpenBadger(BadgerOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		hs := issueN(t, s, "a", n)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir, hs
	}
	wal := func(t *testing.T, dir string) string {
		m := filesWithSuffix(t, dir, ".mem")
		if len(m) == 0 {
			t.Fatal("no .mem file")
		}
		return m[len(m)-1]
	}

	t.Run("intact crash copy opens with every token", func(t *testing.T) {
		dir, hs := crashed(t, 1000)
		s, err := OpenBadger(BadgerOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if n := missing(s, hs); n != 0 {
			t.Fatalf("%d of %d acknowledged tokens missing", n, len(hs))
		}
	})

	cases := []struct {
		name   string
		make   func(t *testing.T) (string, []Hash)
		damage func(t *testing.T, dir string)
	}{
		{"manifest deleted", func(t *testing.T) (string, []Hash) { return closed(t, 1000) }, func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}},
		{"manifest deleted after crash", func(t *testing.T) (string, []Hash) { return crashed(t, 1000) }, func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "MANIFEST")); err != nil {
				t.Fatal(err)
			}
		}},
		{"wal truncated", func(t *testing.T) (string, []Hash) { return crashed(t, 1000) }, func(t *testing.T, dir string) {
			if err := os.Truncate(wal(t, dir), 100<<10); err != nil {
				t.Fatal(err)
			}
		}},
		{"wal bytes flipped", func(t *testing.T) (string, []Hash) { return crashed(t, 1000) }, func(t *testing.T, dir string) {
			f, err := os.OpenFile(wal(t, dir), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 4)
			f.ReadAt(b, 50<<10)
			for i := range b {
				b[i] ^= 0xff
			}
			if _, err := f.WriteAt(b, 50<<10); err != nil {
				t.Fatal(err)
			}
		}},
		{"table bytes flipped", func(t *testing.T) (string, []Hash) { return closed(t, 1000) }, func(t *testing.T, dir string) {
			m := filesWithSuffix(t, dir, ".sst")
			if len(m) == 0 {
				t.Fatal("no .sst file")
			}
			f, err := os.OpenFile(m[0], os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			// A third of the way in: a data block (the first holds the
			// commit sequence, which the sequence check would catch).
			if _, err := f.WriteAt([]byte{0xde, 0xad, 0xbe, 0xef}, fi.Size()/3); err != nil {
				t.Fatal(err)
			}
		}},
		{"table truncated", func(t *testing.T) (string, []Hash) { return closed(t, 1000) }, func(t *testing.T, dir string) {
			m := filesWithSuffix(t, dir, ".sst")
			if len(m) == 0 {
				t.Fatal("no .sst file")
			}
			fi, err := os.Stat(m[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(m[0], fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, _ := c.make(t)
			c.damage(t, dir)
			s, err := OpenBadger(BadgerOptions{Dir: dir})
			if err == nil {
				s.Close()
				t.Fatal("damaged store opened")
			}
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("err = %v, want ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), dir) && !strings.Contains(err.Error(), "badger") {
				t.Errorf("error does not say where: %v", err)
			}
			t.Logf("refused: %v", err)
			if strings.HasPrefix(c.name, "wal") {
				s, err := OpenBadger(BadgerOptions{Dir: dir, Salvage: true})
				if err != nil {
					t.Fatalf("salvage: %v", err)
				}
				s.Close()
			}
		})
	}
}

// TestBadgerFullDisk: on a small tmpfs, issuing until the disk is full
// fails writes with ErrStoreFull (the process does not die of SIGBUS in
// badger's mmap'd files), every acknowledged token stays valid, writes
// resume without a reopen once space is freed, and a store on a full disk
// refuses to open with a message naming the directory.
func TestBadgerFullDisk(t *testing.T) {
	ctx := context.Background()
	mnt := testrig.Tmpfs(t, "28m")
	dir := filepath.Join(mnt, "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ballast := filepath.Join(mnt, "ballast")
	if err := os.WriteFile(ballast, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenBadger(BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()

	var acked []Hash
	issue := func(i int) error {
		h := HashToken(fmt.Sprintf("tok-%d", i))
		user := fmt.Sprintf("user%d", i%500)
		_, err := s.Issue(ctx, "r", h, Record{User: user, Identity: user + "\npam\n" + strings.Repeat("attr=value\n", 20)}, 1000)
		if err == nil {
			acked = append(acked, h)
		}
		return err
	}
	i := 0
	for ; ; i++ {
		err := issue(i)
		if errors.Is(err, ErrStoreFull) {
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error does not name the directory: %v", err)
			}
			break
		}
		if err != nil {
			t.Fatalf("issue %d: %v", i, err)
		}
		if i > 1_000_000 {
			t.Fatal("store never filled up")
		}
	}
	t.Logf("full after %d tokens", len(acked))
	// Writes of every kind are refused, reads work.
	if err := s.PutKey(ctx, "id", []byte("k")); !errors.Is(err, ErrStoreFull) {
		t.Errorf("PutKey on a full disk: %v", err)
	}
	if err := s.Revoke(ctx, "r", acked[0]); !errors.Is(err, ErrStoreFull) {
		t.Errorf("Revoke on a full disk: %v", err)
	}
	if n := missing(s, acked); n != 0 {
		t.Fatalf("%d acknowledged tokens missing on a full disk", n)
	}
	// Free space: writes resume without a reopen.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	for j := range 100 {
		if err := issue(i + 1 + j); err != nil {
			t.Fatalf("issue after freeing space: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// A restart on a full disk refuses clearly; with space it opens and
	// every acknowledged token is there.
	testrig.FillDisk(t, ballast)
	_, err = OpenBadger(BadgerOptions{Dir: dir})
	if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("open on a full disk: %v, want ErrStoreFull naming %s", err, dir)
	}
	t.Logf("open on a full disk: %v", err)
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	s, err = OpenBadger(BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n := missing(s, acked); n != 0 {
		t.Fatalf("%d of %d acknowledged tokens missing after reopen", n, len(acked))
	}
}

// TestBadgerUpgrade: a store written by an sks before the sidecar and the
// smaller memtables (8 MiB memtables, 64 MiB value log, 1 MiB value
// threshold), left by kill -9 with its WAL unflushed, opens with every
// token and gets its sidecar.
func TestBadgerUpgrade(t *testing.T) {
	live := t.TempDir()
	s, err := OpenBadger(BadgerOptions{Dir: live, tune: func(o *badger.Options) {
		*o = o.WithMemTableSize(8 << 20).WithValueLogFileSize(64 << 20).WithValueThreshold(1 << 20)
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := issueN(t, s, "old", 300)
	dir := t.TempDir()
	copyDir(t, live, dir)
	if err := os.Remove(filepath.Join(dir, seqFileName)); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenBadger(BadgerOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := missing(s2, hs); n != 0 {
		t.Fatalf("%d of %d tokens missing after the upgrade", n, len(hs))
	}
	if _, err := os.Stat(filepath.Join(dir, seqFileName)); err != nil {
		t.Errorf("no sidecar after opening: %v", err)
	}
	issueN(t, s2, "new", 10)
}

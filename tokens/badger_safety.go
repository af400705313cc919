package tokens

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"
	"golang.org/x/sys/unix"
)

// This file holds what keeps the on-disk store honest about its data: the
// free-space reserve (a full disk must fail writes, not crash badger), the
// commit sequence that detects lost data at start-up, and the sync of WAL
// files that rotated out before their data was synced.

// DefaultMinFree is the free space, in bytes, that the store keeps on its
// file system by default. Badger writes its write-ahead log and tables
// through mmap: a write to a mapped page with no block left behind it
// kills the process with SIGBUS, which no Go code can recover from. The
// reserve covers what badger may still write after the last admitted
// commit: the rest of the active memtable's WAL (up to 2×MemTableSize is
// mapped), a new one on rotation, the flush of the old one to a table,
// and the manifest. Compactions may also rewrite the whole tree once, so
// the size of the tables is kept free on top of this. (Each new WAL file is
// also preallocated, see allocateWAL.)
//
// debug.SetPanicOnFault cannot help: it turns a fault into a panic only in
// the goroutine that set it, and badger writes its WAL from its own write
// goroutine and its tables from the flush and compaction goroutines, where
// a fault is fatal whatever sks does.
const DefaultMinFree = 16 << 20

// Sizes of the on-disk store. Tokens are a few hundred bytes, so small
// memtables cost nothing in throughput and keep the reserve small.
const (
	badgerMemTableSize = 2 << 20
	badgerVlogFileSize = 8 << 20
	// badgerValueThreshold keeps values in the tree (the value log is only
	// for values above it); it must stay below 15% of the memtable.
	badgerValueThreshold = 64 << 10
)

// ErrStoreFull is returned by writes refused because the store's file
// system has less free space than the reserve. Reads go on working, and
// writes resume by themselves once space is freed.
var ErrStoreFull = errors.New("not enough free disk space for the token store")

// ErrDamaged is returned by OpenBadger when the directory holds less than
// was acknowledged (a lost MANIFEST, a truncated or damaged WAL, a damaged
// table). See the README's "Repairing the token store".
var ErrDamaged = errors.New("token store is damaged")

// pfxMeta keys hold the store's own bookkeeping; dumps skip them.
const pfxMeta = '!'

// seqKey holds the number of the last group sync, written in the same WAL
// before each sync (see seqFile).
var seqKey = []byte{pfxMeta, 's', 'e', 'q'}

// seqFileName is the sidecar beside badger's files: the number of the last
// group sync that completed, written after it completed. The store's own
// seqKey can only be behind it if data that was synced has since gone
// missing: a deleted MANIFEST (badger then starts empty), a WAL truncated
// or damaged (badger replays up to the damage and drops the rest).
const seqFileName = "SKS-COMMITS"

const seqFileLen = 32 // "sks commits 0000000000000000042\n"

func formatSeq(n uint64) []byte {
	b := fmt.Appendf(nil, "sks commits %019d\n", n)
	return b[:seqFileLen]
}

func parseSeq(b []byte) (uint64, bool) {
	s, ok := strings.CutPrefix(string(b), "sks commits ")
	if !ok || !strings.HasSuffix(s, "\n") {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(s, "\n"), 10, 64)
	return n, err == nil
}

// diskGuard refuses writes when the data directory's file system runs low.
type diskGuard struct {
	dir     string
	minFree int64
	// tables is the on-disk size of badger's tables, refreshed now and
	// then: compaction may need that much again.
	tables    atomic.Int64
	refreshed atomic.Int64 // Unix nanoseconds of the last refresh
	full      atomic.Bool
}

func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// check returns ErrStoreFull (wrapped, naming the directory) when a write
// could leave badger without space. It logs when the store becomes full
// and when it recovers.
func (s *Badger) checkSpace() error {
	g := s.disk
	if g == nil {
		return nil
	}
	if now := time.Now().UnixNano(); now-g.refreshed.Load() > int64(5*time.Second) {
		g.refreshed.Store(now)
		var n int64
		for _, t := range s.db.Tables() {
			n += int64(t.OnDiskSize)
		}
		g.tables.Store(n)
	}
	free, err := freeBytes(g.dir)
	if err != nil {
		return fmt.Errorf("cannot check free space of token store %s: %w", g.dir, err)
	}
	need := g.minFree + g.tables.Load()
	if free < need {
		if !g.full.Swap(true) {
			s.log.Error("token store full: refusing writes until space is freed", "dir", g.dir, "free_mib", free>>20, "reserve_mib", need>>20)
		}
		return fmt.Errorf("token store %s: %w (%d MiB free, %d MiB kept in reserve)", g.dir, ErrStoreFull, free>>20, need>>20)
	}
	if g.full.Swap(false) {
		s.log.Info("token store has free space again: writes resume", "dir", g.dir, "free_mib", free>>20)
	}
	return nil
}

// checkSpaceAtOpen refuses to open a store whose file system is below the
// reserve: badger writes files while opening, and a write into a mapped
// page without space behind it kills the process.
func checkSpaceAtOpen(dir string, minFree int64) error {
	if minFree <= 0 {
		return nil
	}
	free, err := freeBytes(dir)
	if err != nil {
		return fmt.Errorf("cannot check free space of token store %s: %w", dir, err)
	}
	if free < minFree {
		return fmt.Errorf("cannot open token store %s: %w: %d MiB free, at least %d MiB needed (free some space, or lower data_min_free_mb at the risk of a crash when the disk fills)", dir, ErrStoreFull, free>>20, (minFree+(1<<20)-1)>>20)
	}
	return nil
}

// seqState is the leader-only state of the commit sequence.
type seqState struct {
	f    *os.File // the sidecar, open for writing
	last uint64   // last sequence number written to the store
	// lastMem is the newest WAL file seen by the last sync (-1: none yet).
	lastMem int
	fids    []int // scratch
}

// preOpenCheck runs before badger.Open: when the sidecar says the store
// was written but badger's MANIFEST is gone, badger would start empty and
// delete the tables it no longer knows.
func preOpenCheck(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, seqFileName)); err != nil {
		return nil // a new store, or one from before the sidecar
	}
	if _, err := os.Stat(filepath.Join(dir, badger.ManifestFilename)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s has %s but no %s; badger would start empty and delete its tables (see \"Repairing the token store\" in the README)", ErrDamaged, dir, seqFileName, badger.ManifestFilename)
	}
	return nil
}

// openSeq compares the store's sequence with the sidecar's and opens the
// sidecar for the group syncs. With salvage the comparison only logs.
func (s *Badger) openSeq(dir string, salvage bool) error {
	var stored uint64
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seqKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return errCorrupt
			}
			stored = binary.BigEndian.Uint64(v)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("cannot read commit sequence of token store %s: %w", dir, err)
	}
	path := filepath.Join(dir, seqFileName)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// New store, or written by an sks without the sidecar.
	case err != nil:
		return fmt.Errorf("cannot read %s: %w", path, err)
	default:
		acked, ok := parseSeq(b)
		if !ok {
			if !salvage {
				return fmt.Errorf("%w: %s is unreadable (see \"Repairing the token store\" in the README)", ErrDamaged, path)
			}
			break
		}
		if stored < acked {
			msg := fmt.Sprintf("%s holds commits up to #%d but #%d were synced before: a MANIFEST or WAL (.mem) file was lost or damaged, and acknowledged tokens may be missing", dir, stored, acked)
			if !salvage {
				return fmt.Errorf("%w: %s (see \"Repairing the token store\" in the README)", ErrDamaged, msg)
			}
			s.log.Warn("salvaging damaged token store", "detail", msg)
		}
		stored = max(stored, acked)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot open %s: %w", path, err)
	}
	if _, err := f.WriteAt(formatSeq(stored), 0); err != nil {
		f.Close()
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("cannot sync %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return err
	}
	s.seq = seqState{f: f, last: stored, lastMem: -1}
	return nil
}

// allocateWAL gives the blocks of a new WAL file real backing: badger
// creates it sparse and writes it through mmap, so once the disk is full a
// write to a page without a block kills the process with SIGBUS. After
// this, the rest of the memtable's writes cannot fail that way, whatever
// else fills the disk. The free-space reserve covers the writes made
// before it runs (a rotation happens inside a commit). Failure is only
// logged: the reserve is still there.
func (s *Badger) allocateWAL(path string) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return // flushed and deleted meanwhile
	}
	defer f.Close()
	fi, err := f.Stat()
	if err == nil {
		err = unix.Fallocate(int(f.Fd()), 0, 0, fi.Size())
	}
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		s.log.Warn("cannot preallocate token store WAL", "path", path, "err", err)
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("cannot open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("cannot sync directory %s: %w", dir, err)
	}
	return nil
}

// durableSync makes every commit finished before it began durable. It
// runs in the group sync's leader only.
//
//  1. It writes the next sequence number to the store: that commit lands in
//     the WAL after every commit it covers.
//  2. db.Sync syncs the active memtable's WAL (and the value log).
//  3. It fsyncs the WAL files of memtables that rotated out but are not yet
//     flushed: db.Sync does not cover them, so a commit made just before a
//     rotation was only in the page cache until badger flushed that
//     memtable to a table, and a power loss in between lost it. The
//     directory is synced too when a WAL file appeared, since badger does
//     not sync it when it creates one.
//  4. It records the sequence number in the sidecar (without fsync: the
//     sidecar may lag after a power loss, which only weakens the check; it
//     can never be ahead of the synced data).
func (s *Badger) durableSync() error {
	next := s.seq.last + 1
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], next)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(seqKey, v[:]) }); err != nil {
		return err
	}
	s.seq.last = next
	if err := s.db.Sync(); err != nil {
		return err
	}
	if err := s.syncRotatedWALs(); err != nil {
		return err
	}
	if s.seq.f != nil {
		if _, err := s.seq.f.WriteAt(formatSeq(next), 0); err != nil {
			return fmt.Errorf("cannot write %s: %w", seqFileName, err)
		}
	}
	return nil
}

// syncRotatedWALs fsyncs every WAL file but the newest, which db.Sync has
// just synced if it held any of the commits being made durable: a newer one
// appears only on a rotation, after which it holds only later commits.
func (s *Badger) syncRotatedWALs() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("cannot list token store %s: %w", s.dir, err)
	}
	fids := s.seq.fids[:0]
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".mem")
		if !ok {
			continue
		}
		if fid, err := strconv.Atoi(name); err == nil {
			fids = append(fids, fid)
		}
	}
	s.seq.fids = fids
	if len(fids) == 0 {
		return nil
	}
	slices.Sort(fids)
	if newest := fids[len(fids)-1]; newest != s.seq.lastMem {
		if err := syncDir(s.dir); err != nil {
			return err
		}
		s.seq.lastMem = newest
		s.allocateWAL(filepath.Join(s.dir, fmt.Sprintf("%05d.mem", newest)))
	}
	for _, fid := range fids[:len(fids)-1] {
		f, err := os.OpenFile(filepath.Join(s.dir, fmt.Sprintf("%05d.mem", fid)), os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // flushed meanwhile: its data is in a synced table
		}
		if err != nil {
			return fmt.Errorf("cannot open rotated WAL: %w", err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("cannot sync rotated WAL: %w", err)
		}
	}
	return nil
}

// checkTables checks that the footer of every table file in dir points
// inside the file. Badger reads the footer through unchecked slices in a
// goroutine of its own, so a truncated table panics where no recover can
// catch it; badger itself verifies the index checksum once the bounds are
// right.
func checkTables(dir string) error {
	tables, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return err
	}
	for _, path := range tables {
		if err := checkTable(path); err != nil {
			return fmt.Errorf("%w: table %s: %v (see \"Repairing the token store\" in the README)", ErrDamaged, path, err)
		}
	}
	return nil
}

func checkTable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	pos := fi.Size()
	u32 := func() (int64, error) {
		pos -= 4
		if pos < 0 {
			return 0, errors.New("file too short")
		}
		var b [4]byte
		if _, err := f.ReadAt(b[:], pos); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(b[:])), nil
	}
	checksumLen, err := u32()
	if err != nil {
		return err
	}
	if pos -= checksumLen; pos < 0 {
		return errors.New("checksum beyond the start of the file (truncated?)")
	}
	indexLen, err := u32()
	if err != nil {
		return err
	}
	if pos -= indexLen; pos < 0 {
		return errors.New("index beyond the start of the file (truncated?)")
	}
	return nil
}

// verifyTables reads every block of every table the MANIFEST names and
// checks its checksum, in this goroutine: badger's own check at open
// (options.OnTableRead) dereferences nil on a damaged block in v4.9.6, in
// a goroutine of its own, and without a check a damaged block panics at
// the first read of it. Encrypted stores are skipped (their tables need
// the key registry).
func verifyTables(dir string) error {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // a new store
	}
	if err != nil {
		return fmt.Errorf("cannot open manifest: %w", err)
	}
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(dir))
	f.Close()
	if err != nil {
		return fmt.Errorf("%w: manifest of %s: %v (see \"Repairing the token store\" in the README)", ErrDamaged, dir, err)
	}
	pool := z.NewAllocatorPool(2)
	defer pool.Release()
	for id, tm := range m.Tables {
		if tm.KeyID != 0 {
			continue
		}
		path := table.NewFilename(id, dir)
		if err := verifyTable(path, tm.Compression, pool); err != nil {
			return fmt.Errorf("%w: table %s: %v (see \"Repairing the token store\" in the README)", ErrDamaged, path, err)
		}
	}
	return nil
}

func verifyTable(path string, c options.CompressionType, pool *z.AllocatorPool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("unreadable: %v", r)
		}
	}()
	mf, err := z.OpenMmapFile(path, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return err
	}
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly:    true,
		ChkMode:     options.OnTableRead,
		Compression: c,
		BlockSize:   4 << 10,
		AllocPool:   pool,
	})
	if err != nil {
		return err
	}
	// Not t.DecrRef: at zero references it deletes the file.
	return t.Close(-1)
}

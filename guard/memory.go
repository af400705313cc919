package guard

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Memory is the State of a single node: counts in a bounded map. With a
// Persister (the badger token store) failures and bans are written through
// and read back at start, so a restart does not lift a ban or reset a
// count. Attempts in flight are not persisted: a restart ends them.
type Memory struct {
	mu  sync.Mutex
	m   map[string]*list.Element
	lru *list.List // front is least recently updated
	max int

	p   Persister
	pmu sync.Mutex // serialises persisting, so the last write is the newest state
}

// Persister keeps the failures and bans of a Memory state across restarts.
// Values are opaque to it; each expires by itself at the given time.
type Persister interface {
	GuardPut(ctx context.Context, key string, value []byte, expires time.Time) error
	GuardDelete(ctx context.Context, key string) error
	GuardLoad(ctx context.Context, fn func(key string, value []byte) error) error
}

type entry struct {
	key         string
	first       time.Time // first attempt of the current series
	failed      int       // settled failures in the series
	inflight    int       // reserved, not yet settled
	bannedUntil time.Time
}

var _ State = (*Memory)(nil)

// NewMemory returns an empty memory state tracking at most max keys.
func NewMemory(max int) *Memory {
	if max <= 0 {
		max = 100000
	}
	return &Memory{m: make(map[string]*list.Element), lru: list.New(), max: max}
}

// NewPersistentMemory returns a memory state that writes its failures and
// bans through p, loaded from p first. Expired entries are skipped.
func NewPersistentMemory(ctx context.Context, max int, p Persister, now time.Time) (*Memory, error) {
	m := NewMemory(max)
	m.p = p
	err := p.GuardLoad(ctx, func(key string, v []byte) error {
		e, ok := decodeEntry(v)
		if !ok {
			return nil // a value of another version: forget it
		}
		if !now.Before(e.bannedUntil) && e.failed == 0 {
			return nil
		}
		e.key = key
		m.m[key] = m.lru.PushBack(&e)
		m.evict()
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load login bans: %w", err)
	}
	return m, nil
}

// Reserve implements State.
func (m *Memory) Reserve(ctx context.Context, now time.Time, cs []Counter) (retryAfter time.Duration, refused bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, c := range cs {
		el, ok := m.m[c.Key]
		if !ok {
			continue
		}
		e := el.Value.(*entry)
		e.roll(now, c.Window)
		var wait time.Duration
		switch {
		case now.Before(e.bannedUntil):
			wait = e.bannedUntil.Sub(now)
		case e.failed+e.inflight >= c.Limit:
			wait = time.Second
		default:
			continue
		}
		refused = true
		retryAfter = max(retryAfter, wait)
	}
	if refused {
		return retryAfter, true, nil
	}
	for _, c := range cs {
		e := m.get(c.Key, now)
		e.inflight++
	}
	return 0, false, nil
}

// roll starts a new series when the window of the current one is over.
func (e *entry) roll(now time.Time, window time.Duration) {
	if now.Sub(e.first) >= window {
		e.first, e.failed = now, 0
	}
}

// get returns the entry of key, created if missing, as most recently used.
func (m *Memory) get(key string, now time.Time) *entry {
	if el, ok := m.m[key]; ok {
		m.lru.MoveToBack(el)
		return el.Value.(*entry)
	}
	e := &entry{key: key, first: now}
	m.m[key] = m.lru.PushBack(e)
	m.evict()
	return e
}

func (m *Memory) evict() {
	for m.lru.Len() > m.max {
		old := m.lru.Remove(m.lru.Front()).(*entry)
		delete(m.m, old.key)
	}
}

// Settle implements State.
func (m *Memory) Settle(ctx context.Context, now time.Time, cs []Counter, o Outcome) ([]bool, error) {
	banned := make([]bool, len(cs))
	var dirty []string
	m.mu.Lock()
	for i, c := range cs {
		e := m.get(c.Key, now)
		if e.inflight > 0 {
			e.inflight--
		}
		e.roll(now, c.Window)
		switch {
		case o == Failed:
			if now.Before(e.bannedUntil) {
				continue // already banned: the ban runs its course
			}
			e.failed++
			if e.failed >= c.Limit {
				e.bannedUntil = now.Add(c.Ban)
				e.failed = 0
				e.first = now
				banned[i] = true
			}
			dirty = append(dirty, c.Key)
		case o == Succeeded && c.ClearOnSuccess && e.failed > 0:
			e.failed = 0
			dirty = append(dirty, c.Key)
		}
		if e.failed == 0 && e.inflight == 0 && !now.Before(e.bannedUntil) {
			m.lru.Remove(m.m[c.Key])
			delete(m.m, c.Key)
		}
	}
	m.mu.Unlock()
	return banned, m.persist(ctx, dirty, cs)
}

// persist writes the current state of keys through the Persister.
func (m *Memory) persist(ctx context.Context, keys []string, cs []Counter) error {
	if m.p == nil || len(keys) == 0 {
		return nil
	}
	m.pmu.Lock()
	defer m.pmu.Unlock()
	var errs []error
	for _, k := range keys {
		var window time.Duration
		for _, c := range cs {
			if c.Key == k {
				window = c.Window
			}
		}
		m.mu.Lock()
		var e entry
		el, ok := m.m[k]
		if ok {
			e = *el.Value.(*entry)
		}
		m.mu.Unlock()
		if !ok || (e.failed == 0 && e.bannedUntil.IsZero()) {
			errs = append(errs, m.p.GuardDelete(ctx, k))
			continue
		}
		exp := e.first.Add(window)
		if e.bannedUntil.After(exp) {
			exp = e.bannedUntil
		}
		errs = append(errs, m.p.GuardPut(ctx, k, encodeEntry(e), exp))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cannot persist login failures: %w", err)
	}
	return nil
}

// Unban implements State.
func (m *Memory) Unban(ctx context.Context, key string) (bool, error) {
	m.mu.Lock()
	el, found := m.m[key]
	if found {
		e := el.Value.(*entry)
		found = e.failed > 0 || !e.bannedUntil.IsZero()
		e.failed, e.bannedUntil = 0, time.Time{}
		if e.inflight == 0 {
			m.lru.Remove(el)
			delete(m.m, key)
		}
	}
	m.mu.Unlock()
	if m.p != nil {
		m.pmu.Lock()
		defer m.pmu.Unlock()
		if err := m.p.GuardDelete(ctx, key); err != nil {
			return found, fmt.Errorf("cannot delete persisted ban: %w", err)
		}
	}
	return found, nil
}

// Len reports how many keys are tracked.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// encodeEntry: version 1, first, failed, bannedUntil (Unix nanoseconds).
func encodeEntry(e entry) []byte {
	b := make([]byte, 1, 25)
	b[0] = 1
	b = binary.BigEndian.AppendUint64(b, uint64(e.first.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.failed))
	var bu int64
	if !e.bannedUntil.IsZero() {
		bu = e.bannedUntil.UnixNano()
	}
	return binary.BigEndian.AppendUint64(b, uint64(bu))
}

func decodeEntry(b []byte) (entry, bool) {
	if len(b) != 25 || b[0] != 1 {
		return entry{}, false
	}
	e := entry{
		first:  time.Unix(0, int64(binary.BigEndian.Uint64(b[1:]))),
		failed: int(min(binary.BigEndian.Uint64(b[9:]), 1<<20)),
	}
	if bu := int64(binary.BigEndian.Uint64(b[17:])); bu != 0 {
		e.bannedUntil = time.Unix(0, bu)
	}
	return e, true
}

package client

import (
	"crypto/sha256"
	"strconv"
	"testing"
	"time"
)

func TestCacheBoundedAndExpires(t *testing.T) {
	c := newCache(10, time.Second)
	now := time.Now()
	for i := range 100 {
		c.put(sha256.Sum256([]byte(strconv.Itoa(i))), Identity{User: "u"}, now)
		if c.len() > 10 {
			t.Fatalf("cache holds %d entries, bound is 10", c.len())
		}
	}
	k := sha256.Sum256([]byte("x"))
	c.put(k, Identity{User: "x"}, now)
	if id, ok := c.get(k, now.Add(500*time.Millisecond)); !ok || id.User != "x" {
		t.Fatalf("fresh entry: got %v %v", id, ok)
	}
	if _, ok := c.get(k, now.Add(time.Second)); ok {
		t.Fatal("expired entry still served")
	}
	off := newCache(10, -1)
	off.put(k, Identity{}, now)
	if _, ok := off.get(k, now); ok {
		t.Fatal("disabled cache served an entry")
	}
}

package cmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sks-server/sks/conf"
	"github.com/sks-server/sks/tokens"
)

// runRepair salvages what is readable from a damaged badger store into a
// new directory. The damaged directory is left as it is: badger works on a
// copy of its files, since opening a store truncates a damaged WAL.
func runRepair(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("repair", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("d", "", "the damaged store's directory (required; left unchanged)")
	to := fs.String("o", "", "a new directory for the salvaged store (required; must not exist)")
	keyFile := fs.String("encryption-key-file", "", "the store's encryption key file, if it is encrypted")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return errors.New("usage: sks repair -d <damaged dir> -o <new dir> [-encryption-key-file F]; stop sks first")
	}
	if _, err := os.Stat(*to); err == nil {
		return fmt.Errorf("%s exists: name a new directory", *to)
	}
	work := *to + ".salvage"
	if err := os.MkdirAll(work, 0o700); err != nil {
		return fmt.Errorf("cannot create working copy: %w", err)
	}
	defer os.RemoveAll(work)
	if err := copyFiles(*from, work); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := conf.Default()
	cfg.DataDir, cfg.EncryptionKeyFile = work, *keyFile
	src, err := openStoreWith(cfg, log, true)
	if err != nil {
		return fmt.Errorf("cannot salvage %s: %w (restore it from a backup)", *from, err)
	}
	defer src.Close()
	cfg.DataDir = *to
	dst, err := openStoreWith(cfg, log, false)
	if err != nil {
		return err
	}
	n, err := tokens.Copy(ctx, src, dst, nil)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("repair stopped after %d entries: %w", n, err)
	}
	fmt.Fprintf(stdout, "salvaged %d entries from %s into %s\nnext: move %s aside, move %s in its place, start sks; tokens issued after the damage point are gone (their users log in again)\n", n, *from, *to, *from, *to)
	return nil
}

// copyFiles copies the regular files of a store directory (it has no
// subdirectories).
func copyFiles(from, to string) error {
	ents, err := os.ReadDir(from)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", from, err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == "LOCK" {
			continue
		}
		if err := copyFile(filepath.Join(from, e.Name()), filepath.Join(to, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return fmt.Errorf("cannot copy %s: %w", from, err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("cannot copy %s: %w", from, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("cannot copy %s: %w", from, err)
	}
	return dst.Close()
}

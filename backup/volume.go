package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/zstd"
)

// maxLine bounds one volume line: a 400 KB item can grow about 4/3 in
// DynamoDB JSON (base64 binaries) plus attribute names and type keys.
const maxLine = 4 << 20

// volumeWriter writes items as zstd-compressed DynamoDB JSON lines,
// counting items and bytes and hashing the compressed stream.
type volumeWriter struct {
	counter countingWriter
	zw      *zstd.Encoder
	items   int64
	raw     int64
	line    []byte
}

func newVolumeWriter(w io.Writer) (*volumeWriter, error) {
	v := &volumeWriter{counter: countingWriter{w: w, h: sha256.New()}}
	zw, err := zstd.NewWriter(&v.counter, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault),
		// A 1 MiB window compresses JSON lines about as well as the default
		// 8 MiB and keeps each open volume's encoder small.
		zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
	if err != nil {
		return nil, err
	}
	v.zw = zw
	return v, nil
}

// add writes one item line: {"Item":{...}}.
func (v *volumeWriter) add(item Item) error {
	line := append(v.line[:0], `{"Item":`...)
	line, err := appendItemJSON(line, item)
	if err != nil {
		return err
	}
	line = append(line, '}', '\n')
	v.line = line
	return v.addLine(line)
}

// addLine writes one complete line (ending in a newline).
func (v *volumeWriter) addLine(line []byte) error {
	if _, err := v.zw.Write(line); err != nil {
		return err
	}
	v.items++
	v.raw += int64(len(line))
	return nil
}

// close flushes the compressor; the volume's digest is final afterwards.
func (v *volumeWriter) close() error { return v.zw.Close() }

func (v *volumeWriter) sha256() string { return hex.EncodeToString(v.counter.h.Sum(nil)) }

type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// readVolume decodes every item line of the compressed volume in r, calling
// fn for each item, and returns the item count, the sha256 of the compressed
// bytes and their length. Decoding stops at the first bad line with its
// line number in the error.
func readVolume(r io.Reader, fn func(Item) error) (items int64, sum string, size int64, err error) {
	return readLines(r, func(b []byte) error {
		if !bytes.HasPrefix(b, []byte(`{"Item":`)) || !bytes.HasSuffix(b, []byte("}")) {
			return errors.New(`not an {"Item":...} line`)
		}
		item, err := decodeItemJSON(b[len(`{"Item":`) : len(b)-1])
		if err != nil {
			return err
		}
		if fn != nil {
			return fn(item)
		}
		return nil
	})
}

// readLines is readVolume for any line format: fn gets each line without
// its newline (the slice is reused).
func readLines(r io.Reader, fn func([]byte) error) (items int64, sum string, size int64, err error) {
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(r, h)}
	zr, err := zstd.NewReader(cr, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
	if err != nil {
		return 0, "", 0, err
	}
	defer zr.Close()
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		if err := fn(sc.Bytes()); err != nil {
			return items, "", 0, fmt.Errorf("line %d: %w", line, err)
		}
		items++
	}
	if err := sc.Err(); err != nil {
		return items, "", 0, fmt.Errorf("after line %d: %w", line, err)
	}
	// Drain what the decoder did not need so the digest covers the object.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return items, "", 0, err
	}
	return items, hex.EncodeToString(h.Sum(nil)), cr.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errCorrupt marks a volume whose digest, size or item count disagrees with
// the manifest.
var errCorrupt = errors.New("volume corrupt")

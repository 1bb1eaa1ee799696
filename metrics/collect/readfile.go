package collect

import (
	"io"
	"os"
	"sync"
)

// readBufs holds buffers for reading /proc and /sys files. os.ReadFile cannot know the size
// of a proc file (stat says 0), so it grows its buffer several times per file; a pooled
// buffer makes a read cost one copy.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxProcFile bounds what readFile keeps of one file.
const maxProcFile = 4 << 20

// readFile returns the content of a (small) proc or sys file.
func readFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	bp := readBufs.Get().(*[]byte)
	b := (*bp)[:0]
	for {
		if len(b) == cap(b) {
			if cap(b) >= maxProcFile {
				break
			}
			b = append(b, 0)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			*bp = b[:0]
			readBufs.Put(bp)
			return "", err
		}
	}
	s := string(b)
	if cap(b) <= 256<<10 {
		*bp = b[:0]
		readBufs.Put(bp)
	}
	return s, nil
}

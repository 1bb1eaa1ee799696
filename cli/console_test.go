package cli

import (
	"bytes"
	"testing"
)

func TestNoConsoleWithoutATerminal(t *testing.T) {
	for _, output := range []string{"auto", "text", "json"} {
		a := &app{stdout: &bytes.Buffer{}, output: output}
		if _, _, ok := a.consoleFiles(); ok {
			t.Errorf("--output %s to a buffer: console chosen", output)
		}
	}
}

func TestLogsHeldWhileTheConsoleIsOpenAreCapped(t *testing.T) {
	b := &cappedBuffer{max: 10}
	b.Write([]byte("0123456"))
	b.Write([]byte("789abc"))
	got := string(b.Bytes())
	if want := "0123456789kiln: 3 more bytes of log dropped while the console was open\n"; got != want {
		t.Errorf("got %q", got)
	}
}

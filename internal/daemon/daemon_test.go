package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"strings"
	"testing"
)

func TestMainExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		runErr error
		code   int
		says   string
	}{
		{[]string{"--file", "x"}, nil, 0, ""},
		{[]string{"--file", "x"}, errors.New("broken"), 1, "kiln-x: broken"},
		{nil, nil, 2, "usage: kiln-x --file FILE"},
		{[]string{"--file", "x", "extra"}, nil, 2, "usage: kiln-x --file FILE"},
		{[]string{"--nope"}, nil, 2, "flag provided but not defined"},
	} {
		var file string
		ran := false
		var stderr bytes.Buffer
		code := Command{
			Name: "kiln-x", Usage: "--file FILE",
			Flags: func(fs *flag.FlagSet) { fs.StringVar(&file, "file", "", "a file") },
			Valid: func() bool { return file != "" },
			Run: func(ctx context.Context, _ *slog.Logger) error {
				ran = true
				if ctx.Err() != nil {
					t.Error("the context was done before the daemon ran")
				}
				return tc.runErr
			},
		}.Main(tc.args, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.says) {
			t.Errorf("%v: exit %d, %q; want %d saying %q", tc.args, code, stderr.String(), tc.code, tc.says)
		}
		if ran != (tc.code != 2) {
			t.Errorf("%v: ran=%v with exit %d", tc.args, ran, code)
		}
	}
}

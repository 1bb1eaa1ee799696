package pulumicli

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The stand-in for zxcvbn-go is compiled only into the Pulumi CLI: it is built here as
// the CLI's build writes it, and run.
func TestTheZxcvbnStandInRatesByLengthAndCharacterClasses(t *testing.T) {
	dir := t.TempDir()
	stub, err := moduleFiles.ReadFile("zxcvbn.go.txt")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"go.mod":           "module standin\n\ngo 1.22\n\nrequire github.com/nbutton23/zxcvbn-go v0.0.0\n\nreplace github.com/nbutton23/zxcvbn-go => ./zxcvbn\n",
		"zxcvbn/go.mod":    stubModules["zxcvbn/nbutton23"],
		"zxcvbn/zxcvbn.go": string(stub),
		"main.go": `package main

import (
	"fmt"

	"github.com/nbutton23/zxcvbn-go"
)

func main() {
	for _, p := range []string{"", "password", "Ab1!", "0123456789"} {
		fmt.Printf("%q %.2f\n", p, zxcvbn.PasswordStrength(p, nil).Entropy)
	}
}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "run", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run: %v\n%s", err, out)
	}
	// 8 lower-case letters: 8*log2(26); one of each class: 4*log2(95); 10 digits: 10*log2(10).
	want := "\"\" 0.00\n\"password\" 37.60\n\"Ab1!\" 26.28\n\"0123456789\" 33.22\n"
	if string(out) != want {
		t.Errorf("estimates:\n%s\nwant:\n%s", out, want)
	}
}

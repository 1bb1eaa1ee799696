package procstat

import (
	"os"
	"testing"
)

func TestParseCountsFieldsFromTheLastParenthesis(t *testing.T) {
	// A command name with spaces and a ')' of its own.
	line := []byte("4242 (evil) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 987654 1000 200 18446744073709551615")
	st, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.PGID != 4242 || st.StartTime != 987654 || st.Gone() {
		t.Fatalf("stat = %+v", st)
	}
	for _, bad := range []string{"no parenthesis", "1 (x) S 1 2"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	zombie, _ := Parse([]byte("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0"))
	if !zombie.Gone() {
		t.Error("a zombie is not gone")
	}
}

func TestReadOwnProcess(t *testing.T) {
	st, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.Gone() || st.StartTime == 0 {
		t.Fatalf("own stat = %+v", st)
	}
}

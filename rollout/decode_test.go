package rollout

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Every type with an EventName method is in eventTypes, so the decoder knows it.
func TestEveryEventTypeIsListed(t *testing.T) {
	var declared []string
	fset := token.NewFileSet()
	files, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f.Name(), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range file.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && fn.Name.Name == "EventName" {
				if id, ok := fn.Recv.List[0].Type.(*ast.Ident); ok {
					declared = append(declared, id.Name)
				}
			}
		}
	}
	var listed []string
	for _, ev := range EventTypes() {
		listed = append(listed, reflect.TypeOf(ev).Name())
	}
	slices.Sort(declared)
	slices.Sort(listed)
	if !slices.Equal(declared, listed) {
		t.Fatalf("types with EventName: %v\nlisted in eventTypes: %v", declared, listed)
	}
}

// Every event, with every field set, survives MarshalEvent and UnmarshalEvent.
func TestEveryEventSurvivesMarshalAndUnmarshal(t *testing.T) {
	for _, zero := range EventTypes() {
		v := reflect.New(reflect.TypeOf(zero)).Elem()
		seed := 1
		if err := fill(v, &seed); err != nil {
			t.Fatalf("%s: %v", zero.EventName(), err)
		}
		ev := v.Interface().(Event)
		b, err := MarshalEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(b), `{"event":"`+ev.EventName()+`",`) {
			t.Errorf("%s encodes as %s", ev.EventName(), b)
		}
		back, err := UnmarshalEvent(b)
		if err != nil {
			t.Fatalf("%s: %v", ev.EventName(), err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: got %#v, want %#v", ev.EventName(), back, ev)
		}
	}
	if _, err := UnmarshalEvent([]byte(`{"event":"nope"}`)); err == nil {
		t.Error("an unknown event decoded")
	}
}

// fill sets every exported field of v, recursively, to a value that is not zero.
func fill(v reflect.Value, seed *int) error {
	*seed++
	n := *seed
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 11, 22, 1, 0, n, 0, time.UTC)))
			return nil
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := fill(v.Field(i), seed); err != nil {
					return fmt.Errorf("%s: %w", v.Type().Field(i).Name, err)
				}
			}
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Float64:
		v.SetFloat(float64(n) + 0.25)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		if err := fill(p.Elem(), seed); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		if err := fill(s.Index(0), seed); err != nil {
			return err
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		if err := fill(k, seed); err != nil {
			return err
		}
		if err := fill(e, seed); err != nil {
			return err
		}
		m.SetMapIndex(k, e)
		v.Set(m)
	default:
		return fmt.Errorf("no value for a %s", v.Type())
	}
	return nil
}

package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestCountsVersionsAndFailuresWithinItsBounds(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "nope", http.StatusBadGateway)
			return
		}
		w.Header().Set("X-Version", "2.0.0")
	}))
	defer srv.Close()
	run, err := Start(context.Background(), Options{URL: srv.URL, Workers: 4, MaxTotal: 200, MaxTime: time.Minute, VersionHeader: "X-Version"})
	if err != nil {
		t.Fatal(err)
	}
	<-run.done // the count bound ends it
	rep := run.Stop()
	if rep.Sent != 200 {
		t.Fatalf("sent %d, want exactly the bound of 200", rep.Sent)
	}
	if rep.Failed != 20 || rep.Versions["2.0.0"] != 180 {
		t.Fatalf("report %+v", rep)
	}
	if len(rep.Errors) != 5 || rep.Errors[0] != "HTTP 502" {
		t.Fatalf("errors %v", rep.Errors)
	}
}

func TestRefusesAnUnboundedLoad(t *testing.T) {
	if _, err := Start(context.Background(), Options{URL: "http://127.0.0.1:1", Workers: 1, MaxTotal: 1}); err == nil {
		t.Fatal("a load without a time bound was accepted")
	}
}

func TestConnectionRefusedIsAFailure(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	run, err := Start(context.Background(), Options{URL: url, Workers: 1, MaxTotal: 3, MaxTime: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	<-run.done
	if rep := run.Stop(); rep.Failed != 3 {
		t.Fatalf("report %+v", rep)
	}
}

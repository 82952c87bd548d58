package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime/pprof"
	"time"
)

// profileWindow is how long a run is profiled, from the moment the
// producer's stream started. Runs shorter than that leave no producer
// profile: profile with larger workloads (-rows 1000000 -tx 300000).
const profileWindow = 3 * time.Second

// profileRun writes profiles of one end-to-end run once the producer's
// stream started: prefix+".producer.pprof" (CPU) and
// prefix+".producer.allocs.pprof" (allocations) from the producer's pprof
// endpoint, and prefix+".bench.pprof" (CPU) of this process (the broker's
// side), over the same window. Failures are printed, not fatal: a profile is an
// aid, not a measurement.
func profileRun(p *producerProc, setup *producerSetup, prefix string) {
	if err := p.waitLog("binlog stream started", time.Minute); err != nil {
		fmt.Fprintf(os.Stderr, "bench: no profile: %v\n", err)
		return
	}
	self, err := os.Create(prefix + ".bench.pprof")
	if err == nil {
		if err = pprof.StartCPUProfile(self); err == nil {
			defer func() {
				pprof.StopCPUProfile()
				self.Close()
			}()
		} else {
			self.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no profile of this process: %v\n", err)
	}
	seconds := int(profileWindow / time.Second)
	allocs := make(chan struct{})
	go func() {
		defer close(allocs)
		fetchProfile(fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", setup.httpAddr, seconds), prefix+".producer.allocs.pprof")
	}()
	fetchProfile(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", setup.httpAddr, seconds), prefix+".producer.pprof")
	<-allocs
}

// fetchProfile writes the profile at url (the producer's pprof endpoint)
// to path; failures are printed.
func fetchProfile(url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no producer profile %s: %v\n", path, err)
		return
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no producer profile: %v\n", err)
		return
	}
	defer out.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		fmt.Fprintf(os.Stderr, "bench: producer profile %s: %v\n", path, err)
	}
}

// traceRun writes an execution trace of the producer (its pprof
// endpoint) of the given length to path, starting now.
func traceRun(setup *producerSetup, path string, length time.Duration) {
	url := fmt.Sprintf("http://%s/debug/pprof/trace?seconds=%d", setup.httpAddr, max(int(length/time.Second), 1))
	resp, err := http.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no producer trace: %v\n", err)
		return
	}
	defer resp.Body.Close()
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no producer trace: %v\n", err)
		return
	}
	defer out.Close()
	if _, err := io.Copy(out, resp.Body); err != nil {
		fmt.Fprintf(os.Stderr, "bench: producer trace: %v\n", err)
	}
}

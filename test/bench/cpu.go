package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// userHZ is the unit of /proc/stat and /proc/PID/stat CPU times (USER_HZ,
// 100 on every Linux architecture Go supports).
const userHZ = 100

// cpuSample is a reading of CPU time at one moment.
type cpuSample struct {
	At time.Time
	// Busy is the non-idle CPU time of the whole machine, in seconds.
	Busy float64
	// Ours is the CPU time of this process (with its embedded brokers), its
	// exited children (producers, go build) and the benchmark's MariaDB,
	// in seconds.
	Ours float64
}

// cpuMeter tells the benchmark's own CPU use from other processes', so
// that a report can say how much other work disturbed it.
type cpuMeter struct {
	// mariadbPID is the benchmark server's process (0 when unknown).
	mariadbPID int
}

// sample reads the machine's and the benchmark's CPU time. It must be
// taken while no producer is running (their time counts once reaped).
func (m *cpuMeter) sample() (cpuSample, error) {
	idle, total, err := cpuTimes()
	if err != nil {
		return cpuSample{}, err
	}
	s := cpuSample{At: time.Now(), Busy: float64(total-idle) / userHZ}
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			return cpuSample{}, fmt.Errorf("getrusage: %w", err)
		}
		s.Ours += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
	}
	if m.mariadbPID > 0 {
		sec, err := processCPU(m.mariadbPID)
		if err != nil {
			return cpuSample{}, err
		}
		s.Ours += sec
	}
	return s, nil
}

// tvSeconds converts a Timeval to seconds.
func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// otherShare returns the share of the machine's capacity (cpus CPUs) that
// other processes used between a and b: 0 when the benchmark had the
// machine to itself, 0.5 when others used one of two CPUs throughout.
func otherShare(a, b cpuSample, cpus int) float64 {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 || cpus <= 0 {
		return 0
	}
	other := (b.Busy - a.Busy) - (b.Ours - a.Ours)
	return min(max(other, 0)/(wall*float64(cpus)), 1)
}

// processCPU returns the user and system CPU time of process pid in
// seconds, from /proc/PID/stat.
func processCPU(pid int) (float64, error) {
	path := fmt.Sprintf("/proc/%d/stat", pid)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields 14 and 15 (utime, stime) are the 12th and 13th after it.
	s := string(data)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, fmt.Errorf("read CPU time of process %d: unexpected %s: %q", pid, path, s)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("read CPU time of process %d: unexpected %s: %q", pid, path, s)
	}
	var ticks uint64
	for _, v := range f[11:13] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read CPU time of process %d: %s: %w", pid, path, err)
		}
		ticks += n
	}
	return float64(ticks) / userHZ, nil
}

// findProcess returns the pid of the process whose command line contains
// arg (e.g. "--datadir=/tmp/..."), or 0 when there is none.
func findProcess(arg string) int {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(data), "\x00") {
			if a == arg {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				return pid
			}
		}
	}
	return 0
}

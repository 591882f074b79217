package main

import (
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc (100 on Linux).
const clockTicks = 100

// cpuTimes is the CPU time, in seconds, each process used so far, and the
// machine's busy time, summed over its cores.
type cpuTimes struct {
	at      time.Time
	procs   map[string]float64
	machine float64
	// requests are the replicator's API requests so far, by method (see
	// requestsByMethod).
	requests map[string]float64
}

// processCPU returns the user and system CPU time pid used, in seconds.
func processCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	// utime and stime are fields 14 and 15: 12 and 13 after the name.
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	u, err := strconv.ParseFloat(f[11], 64)
	if err != nil {
		return 0, err
	}
	s, err := strconv.ParseFloat(f[12], 64)
	return (u + s) / clockTicks, err
}

// machineBusy returns the CPU time all cores spent not idle, in seconds.
func machineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, err
		}
		// idle and iowait are the 4th and 5th; guest times are already
		// in user and nice.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return busy / clockTicks, nil
}

// sampleCPU reads the CPU times of the named processes and the machine.
func sampleCPU(pids map[string]int) cpuTimes {
	t := cpuTimes{at: time.Now(), procs: map[string]float64{}}
	for name, pid := range pids {
		if s, err := processCPU(pid); err == nil {
			t.procs[name] = s
		}
	}
	t.machine, _ = machineBusy()
	return t
}

// cpuUse is what a phase cost in CPU: seconds per process, and how busy the
// machine was (1 = every core all the time).
type cpuUse struct {
	Seconds  map[string]float64 `json:"cpuSeconds"`
	Busy     float64            `json:"machineBusy"`
	Requests map[string]float64 `json:"replicatorRequests"`
}

func (t cpuTimes) since(before cpuTimes) cpuUse {
	u := cpuUse{Seconds: map[string]float64{}, Requests: map[string]float64{}}
	for name, s := range t.procs {
		if b, ok := before.procs[name]; ok {
			u.Seconds[name] = s - b
		}
	}
	for method, n := range t.requests {
		if d := n - before.requests[method]; d > 0 {
			u.Requests[method] = d
		}
	}
	if wall := t.at.Sub(before.at).Seconds(); wall > 0 {
		u.Busy = (t.machine - before.machine) / wall / float64(runtime.NumCPU())
	}
	return u
}

func (u cpuUse) String() string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(u.Seconds)) {
		parts = append(parts, fmt.Sprintf("%s %.1f", name, u.Seconds[name]))
	}
	var requests []string
	for _, method := range slices.Sorted(maps.Keys(u.Requests)) {
		requests = append(requests, fmt.Sprintf("%s %.0f", method, u.Requests[method]))
	}
	if len(requests) == 0 {
		requests = []string{"none"}
	}
	return fmt.Sprintf("CPU s: %s; machine %.0f%% busy; replicator requests: %s", strings.Join(parts, ", "), 100*u.Busy, strings.Join(requests, ", "))
}

package testsupport

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// HTTPGet returns the status code and body of a GET of url.
func HTTPGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// Metrics is a parsed Prometheus text exposition.
type Metrics struct {
	Families map[string]*dto.MetricFamily
	// Raw is the text as served.
	Raw string
}

// Scrape reads and parses the metrics at url.
func Scrape(url string) (*Metrics, error) {
	code, body, err := HTTPGet(url)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("%s: status %d", url, code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader([]byte(body)))
	if err != nil {
		return nil, fmt.Errorf("parsing metrics: %w", err)
	}
	return &Metrics{Families: families, Raw: body}, nil
}

// Value returns the sum of the samples of a counter or gauge whose labels
// include want.
func (m *Metrics) Value(name string, want map[string]string) float64 {
	total := 0.0
	for _, s := range m.Families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range s.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if match {
			total += s.GetCounter().GetValue() + s.GetGauge().GetValue()
		}
	}
	return total
}

// Sum adds up a family's values (counters and gauges) by the value of one
// label ("" for all together).
func (m *Metrics) Sum(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m.Families[name].GetMetric() {
		key := ""
		for _, l := range s.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += s.GetCounter().GetValue() + s.GetGauge().GetValue()
	}
	return out
}

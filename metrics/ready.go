package metrics

import "github.com/prometheus/client_golang/prometheus"

// ReadyGauge registers sks_ready{component} (1 ready, 0 not ready; the
// components are "store" and "module:NAME" for each login module with a
// checkable backend) and returns the function that sets it, in the shape
// of server.HealthOptions.Report. Call it once.
func (m *Metrics) ReadyGauge() func(component string, ready bool) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sks_ready",
		Help: "Whether a component the server needs answers (1) or not (0): the token store and each login module's backend, as /readyz checks them.",
	}, []string{"component"})
	m.reg.MustRegister(g)
	return func(component string, ready bool) {
		v := 0.0
		if ready {
			v = 1
		}
		g.WithLabelValues(component).Set(v)
	}
}

package projection

import "time"

// SetSampleEvery makes the lag sampling fast for tests.
func SetSampleEvery(p *Projector, d time.Duration) { p.sampleEvery = d }

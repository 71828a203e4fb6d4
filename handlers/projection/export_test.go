package projection

import "time"

// SetSampleEvery makes the lag sampling fast for tests.
func SetSampleEvery(p *Projector, d time.Duration) { p.sampleEvery = d }

// BeforeRebuildWrites makes f run between a rebuild's read of the stored
// model and its writes, until the test ends.
func BeforeRebuildWrites(t interface{ Cleanup(func()) }, f func()) {
	beforeWrites = f
	t.Cleanup(func() { beforeWrites = func() {} })
}

package kcemu

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// logFileName holds, one JSON line per commit, what changed since the
// snapshot: a write appends a line, not the whole state.
const logFileName = "kcemu-state.log"

// minCompactBytes keeps a small realm from compacting every few writes.
const minCompactBytes = 1 << 20

// LogFile is the change log the emulator keeps next to StateFile.
func LogFile(dataDir string) string { return filepath.Join(dataDir, logFileName) }

// record is one commit: the changes of one update, under its number.
type record struct {
	Seq     uint64   `json:"seq"`
	Changes []change `json:"changes"`
}

// loadState reads the snapshot and replays the log onto it.
func loadState(dataDir string) (*state, error) {
	st, err := loadSnapshot(StateFile(dataDir))
	if err != nil {
		return nil, err
	}
	path := LogFile(dataDir)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read emulator log %s: %w", path, err)
	}
	if err := replay(st, data); err != nil {
		return nil, fmt.Errorf("emulator log %s is corrupt (%v); %s", path, err, errFresh)
	}
	return st, nil
}

// replay applies the records the snapshot does not include. A last line
// that does not parse is a record a crash cut short: it was never
// acknowledged, so it is dropped; a bad line before it is corruption.
func replay(st *state, data []byte) error {
	lines := bytes.Split(bytes.TrimRight(data, "\n\x00"), []byte("\n"))
	for i, line := range lines {
		var rec record
		if err := json.Unmarshal(line, &rec); err != nil {
			if i == len(lines)-1 {
				break
			}
			return fmt.Errorf("line %d: %w", i+1, err)
		}
		if rec.Seq <= st.Seq {
			continue // already in the snapshot: a crash came between it and the truncation
		}
		for _, c := range rec.Changes {
			if err := st.apply(c); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		st.Seq = rec.Seq
	}
	st.forgetChanges()
	return nil
}

// forgetChanges drops what puts noted while replaying: it is on disk.
func (st *state) forgetChanges() {
	st.dirty = nil
	for _, rl := range st.Realms {
		rl.dirty = nil
	}
}

// stateLog appends commits to the log and folds the log into a new
// snapshot when it has grown as large as the snapshot. append and compact
// run under the server's write lock; sync runs outside it, so commits
// that wait for the disk together share one fsync.
type stateLog struct {
	dir      string
	f        *os.File
	size     int64 // bytes in the log
	snapSize int64 // bytes in the last snapshot
	// compactAt, when set, replaces the snapshot's size as the log's
	// limit; tests set it to compact on every write.
	compactAt int64
	appended  atomic.Uint64
	syncMu    sync.Mutex
	synced    atomic.Uint64
}

// openLog starts a fresh log over a snapshot of st, so the log a crash
// left (torn tail included) is folded in before anything is appended.
func openLog(dataDir string, st *state) (*stateLog, error) {
	f, err := os.OpenFile(LogFile(dataDir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open emulator log: %w", err)
	}
	l := &stateLog{dir: dataDir, f: f}
	if err := l.compact(st); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// append writes one commit's changes; the caller holds the write lock and
// then calls sync with the returned number before answering. Changes it
// could not write are noted again, to go out with the next commit.
func (l *stateLog) append(st *state, cs []change) (uint64, error) {
	rec := record{Seq: st.Seq + 1, Changes: cs}
	line, err := json.Marshal(rec)
	if err != nil {
		st.retouch(cs)
		return 0, fmt.Errorf("marshal change record: %w", err)
	}
	line = append(line, '\n')
	if _, err := l.f.Write(line); err != nil {
		// Cut what was written, so the next record starts a line.
		_ = l.f.Truncate(l.size)
		st.retouch(cs)
		return 0, fmt.Errorf("append to emulator log: %w", err)
	}
	st.Seq = rec.Seq
	l.size += int64(len(line))
	l.appended.Store(rec.Seq)
	return rec.Seq, nil
}

// full reports that the log has reached its limit and should be compacted.
func (l *stateLog) full() bool { return l.size >= l.limit() }

// limit is the log size that triggers a compaction: as large as the
// snapshot, so replaying the log costs at most what loading the snapshot
// does, and a write's share of compacting stays constant.
func (l *stateLog) limit() int64 {
	if l.compactAt > 0 {
		return l.compactAt
	}
	return max(l.snapSize, minCompactBytes)
}

// compact writes st as the snapshot and empties the log. A crash between
// the two leaves records the snapshot already holds; replay skips them by
// number.
func (l *stateLog) compact(st *state) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("marshal emulator state: %w", err)
	}
	if err := writeFileAtomic(StateFile(l.dir), data); err != nil {
		return fmt.Errorf("persist emulator state: %w", err)
	}
	if err := l.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate emulator log: %w", err)
	}
	l.size, l.snapSize = 0, int64(len(data))
	return nil
}

// sync returns once record seq is on disk. One fsync covers every record
// appended before it, so a caller whose record a concurrent fsync already
// covered returns without its own.
func (l *stateLog) sync(seq uint64) error {
	if l.synced.Load() >= seq {
		return nil
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.synced.Load() >= seq {
		return nil
	}
	upto := l.appended.Load()
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync emulator log: %w", err)
	}
	l.synced.Store(upto)
	return nil
}

func (l *stateLog) close() error { return l.f.Close() }

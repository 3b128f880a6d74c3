package panossim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// job is a commit job. Jobs run one after another; each finishes CommitDuration after it starts.
// Their effects are applied lazily, the first time anything (an API request, a TLS handshake on a
// served profile, an inspection method) looks at the device after the finish time, which an
// observer cannot tell from a background worker.
type job struct {
	id          int
	user        string
	description string
	// admins limit a partial commit to their changes; nil for a full commit.
	admins     []string
	enqueued   time.Time
	start      time.Time
	finish     time.Time
	lastChange int
	snapshot   *node
	failWith   []string
	done       bool
	result     string
	details    []string
}

// CommitRecord describes a commit job, for tests and the demo.
type CommitRecord struct {
	JobID       int
	User        string
	Description string
	Partial     bool
	Admins      []string
	// Result is OK, FAIL, or "" while the job runs.
	Result  string
	Details []string
}

func (s *Sim) commit(w http.ResponseWriter, r *http.Request, admin string) {
	cmd, err := parseElement(r.Form.Get("cmd"))
	if err != nil {
		writeErr(w, errorf("18", "%v", err))
		return
	}
	if cmd.tag != "commit" {
		writeErr(w, errorf("17", "%s is unexpected: the command must be <commit>", cmd.tag))
		return
	}
	for _, c := range cmd.children {
		switch c.tag {
		case "description", "partial", "force":
		default:
			writeErr(w, errorf("17", "commit -> %s is unexpected", c.tag))
			return
		}
	}
	action := r.Form.Get("action")
	partial := cmd.child("partial")
	// The docs send a partial commit with action=partial; pango (FirewallCommit.Action is ""),
	// pan-os-python (FirewallCommit.commit_action is None) and pan-python (panxapi --partial,
	// "Commit job enqueued" in its docs) send the <partial> element without it. Both are taken.
	switch {
	case action == "partial" && partial == nil:
		writeErr(w, errorf("", "action=partial requires a <partial> element"))
		return
	case action != "" && action != "partial":
		writeErr(w, errorf("", "commit action %s is not simulated", action))
		return
	}
	var admins []string
	if partial != nil {
		admins = partial.memberValues("admin")
		if len(admins) == 0 {
			// Partial commits by scope (device-and-network excluded, ...) are not modelled.
			writeErr(w, errorf("", "the simulator models partial commits by admin only: give <partial><admin><member>"))
			return
		}
	}
	force := cmd.child("force") != nil
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.advanceLocked(now)
	pending := 0
	for _, ch := range s.changes {
		if admins == nil || contains(admins, ch.admin) {
			pending++
		}
	}
	if pending == 0 && !force {
		// pan-python: "There are no changes to commit." and no job id [exact nesting UNCONFIRMED].
		writeXML(w, http.StatusOK, `<response status="success" code="19"><msg><line>There are no changes to commit.</line></msg></response>`)
		return
	}
	j := &job{
		id: len(s.jobs) + 1, user: admin, description: cmd.value("description"), admins: admins,
		enqueued: now, start: now, lastChange: s.nextChange,
	}
	if n := len(s.jobs); n > 0 && s.jobs[n-1].finish.After(now) {
		j.start = s.jobs[n-1].finish
	}
	j.finish = j.start.Add(s.commitDuration)
	if admins == nil {
		j.snapshot = s.candidate.clone()
	}
	if s.faults.failCommits > 0 {
		s.faults.failCommits--
		j.failWith = append([]string(nil), s.faults.commitMessages...)
	}
	s.jobs = append(s.jobs, j)
	id := strconv.Itoa(j.id)
	writeXML(w, http.StatusOK, `<response status="success" code="19"><result><msg><line>Commit job enqueued with jobid `+id+`</line></msg><job>`+id+`</job></result></response>`)
}

// advanceLocked finishes the jobs whose time has come.
func (s *Sim) advanceLocked(now time.Time) {
	for _, j := range s.jobs {
		if !j.done && !now.Before(j.finish) {
			s.finishLocked(j)
		}
	}
}

func (s *Sim) finishLocked(j *job) {
	j.done = true
	fail := func(lines ...string) {
		j.result = "FAIL"
		j.details = append(lines, "commit failed")
	}
	if len(j.failWith) > 0 {
		fail(j.failWith...)
		return
	}
	var next *node
	if j.admins == nil {
		next = j.snapshot
	} else {
		next = s.running.clone()
		for _, ch := range s.changes {
			if ch.id <= j.lastChange && contains(j.admins, ch.admin) {
				if err := ch.apply(next); err != nil {
					fail(append([]string{"Validation Error:"}, err.lines...)...)
					return
				}
			}
		}
	}
	if err := validateConfig(next); err != nil {
		fail("Validation Error:", err.Error())
		return
	}
	if problems := s.referenceProblems(next); len(problems) > 0 {
		fail(append([]string{"Validation Error:"}, problems...)...)
		return
	}
	s.running = next
	j.snapshot = nil
	kept := s.changes[:0]
	for _, ch := range s.changes {
		if ch.id > j.lastChange || (j.admins != nil && !contains(j.admins, ch.admin)) {
			kept = append(kept, ch)
		}
	}
	s.changes = kept
	j.result = "OK"
	j.details = []string{"Configuration committed successfully"}
	if err := s.reconcileListenersLocked(); err != nil {
		j.details = append(j.details, "warning: "+err.Error())
	}
}

const jobTime = "2006/01/02 15:04:05"

func (s *Sim) jobXML(j *job, now time.Time) string {
	status, result, tfin := "ACT", "PEND", "Still Active"
	progress := 0
	switch {
	case j.done:
		status, result, tfin, progress = "FIN", j.result, j.finish.Format(jobTime), 100
	case now.Before(j.start):
		status = "PEND"
	default:
		progress = int(100 * now.Sub(j.start) / j.finish.Sub(j.start))
		if progress > 99 {
			progress = 99
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<job><tenq>%s</tenq><tdeq>%s</tdeq><id>%d</id><user>%s</user><type>Commit</type>",
		j.enqueued.Format(jobTime), j.start.Format("15:04:05"), j.id, escape(j.user))
	fmt.Fprintf(&b, "<status>%s</status><queued>NO</queued><stoppable>no</stoppable><result>%s</result><tfin>%s</tfin>",
		status, result, tfin)
	fmt.Fprintf(&b, "<description>%s</description><positionInQ>0</positionInQ><progress>%d</progress><details>", escape(j.description), progress)
	for _, l := range j.details {
		b.WriteString("<line><![CDATA[" + strings.ReplaceAll(l, "]]>", "]]]]><![CDATA[>") + "]]></line>")
	}
	b.WriteString("</details><warnings/></job>")
	return b.String()
}

func (s *Sim) showJobs(w http.ResponseWriter, jobs *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.advanceLocked(now)
	var b strings.Builder
	switch {
	case jobs.child("id") != nil:
		id, ok := atoi(jobs.value("id"))
		if !ok || id < 1 || id > len(s.jobs) {
			writeErr(w, errorf("", "job %s not found", jobs.value("id")))
			return
		}
		b.WriteString(s.jobXML(s.jobs[id-1], now))
	case jobs.child("all") != nil:
		for _, j := range s.jobs {
			b.WriteString(s.jobXML(j, now))
		}
	default:
		writeErr(w, errorf("17", "show -> jobs: give id or all"))
		return
	}
	writeXML(w, http.StatusOK, `<response status="success"><result>`+b.String()+`</result></response>`)
}

// Commits lists every commit job so far.
func (s *Sim) Commits() []CommitRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advanceLocked(time.Now())
	out := make([]CommitRecord, 0, len(s.jobs))
	for _, j := range s.jobs {
		out = append(out, CommitRecord{
			JobID: j.id, User: j.user, Description: j.description, Partial: j.admins != nil,
			Admins: append([]string(nil), j.admins...), Result: j.result, Details: append([]string(nil), j.details...),
		})
	}
	return out
}

// SetCommitDuration changes how long later commit jobs run.
func (s *Sim) SetCommitDuration(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		d = time.Millisecond
	}
	s.commitDuration = d
}

// Recovery of a webhook's deliveries after an outage: a form that starts a
// `recoverDeliveries` job for the selected webhook, and its jobs with their
// progress, polled while one is still running.

import { $, h, showError, fullTime, badge } from './dom.js';

const POLL_MS = 1_000;

const JOB = `id state since until statuses total queued open succeeded failed createdAt finishedAt`;
const Q = {
  jobs: `query Recoveries($id: ID!) { recoveryJobs(webhookId: $id, first: 5) { ${JOB} } }`,
  start: `mutation Recover($filter: RecoveryFilter!) { recoverDeliveries(filter: $filter) { ${JOB} } }`,
  cancel: `mutation CancelRecovery($id: ID!) { cancelRecovery(id: $id) { ${JOB} } }`,
};

/** `<input type="datetime-local">`'s value for `date`, in local time. */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

export class RecoveryPanel {
  /**
   * @param {object} options
   * @param {(query: string, variables?: object) => Promise<object>} options.gql
   * @param {(text: string) => void} options.notice
   * @param {() => boolean} options.isAdmin
   */
  constructor({ gql, notice, isAdmin }) {
    Object.assign(this, { gql, notice, isAdmin });
    this.webhookId = null;
    this.timer = null;
    $('recover-toggle').addEventListener('click', () => this.toggleForm($('recover-form').hidden));
    $('rc-cancel').addEventListener('click', () => this.toggleForm(false));
    $('recover-form').addEventListener('submit', (event) => this.start(event));
  }

  /** Shows the jobs of `webhookId` (and follows them while they run). */
  show(webhookId) {
    if (webhookId !== this.webhookId) this.toggleForm(false);
    this.webhookId = webhookId;
    this.load();
  }

  hide() {
    this.webhookId = null;
    clearTimeout(this.timer);
    this.timer = null;
    this.toggleForm(false);
    $('recoveries').hidden = true;
    $('recoveries-list').replaceChildren();
  }

  toggleForm(open) {
    $('recover-form').hidden = !open;
    $('recover-toggle').setAttribute('aria-expanded', String(open));
    showError($('recover-error'), null);
    if (!open) return;
    $('rc-since').value = localInput(new Date(Date.now() - 3_600_000));
    $('rc-until').value = '';
    $('rc-since').focus();
  }

  async start(event) {
    event.preventDefault();
    const since = $('rc-since').value;
    const until = $('rc-until').value;
    if (!since) {
      showError($('recover-error'), { message: 'Choose when the window starts.' });
      return;
    }
    const statuses = [...document.querySelectorAll('#recover-form input[name="status"]:checked')]
      .map((box) => box.value);
    const filter = {
      webhookId: this.webhookId,
      since: new Date(since).toISOString(),
      until: until ? new Date(until).toISOString() : null,
      statuses,
    };
    $('rc-start').disabled = true;
    try {
      const data = await this.gql(Q.start, { filter });
      const job = data.recoverDeliveries;
      this.toggleForm(false);
      this.notice(`Recovery started: ${job.total} deliver${job.total === 1 ? 'y' : 'ies'} to queue again.`);
      await this.load();
    } catch (err) {
      showError($('recover-error'), err);
    } finally {
      $('rc-start').disabled = false;
    }
  }

  async cancel(job, button) {
    button.disabled = true;
    try {
      await this.gql(Q.cancel, { id: job.id });
      this.notice(`Recovery cancelled; the ${job.queued} deliveries it queued stay queued.`);
      await this.load();
    } catch (err) {
      showError($('recover-error'), err);
      button.disabled = false;
    }
  }

  async load() {
    const id = this.webhookId;
    clearTimeout(this.timer);
    this.timer = null;
    if (!id) return;
    let jobs;
    try {
      jobs = (await this.gql(Q.jobs, { id })).recoveryJobs;
    } catch (err) {
      showError($('recover-error'), err);
      return;
    }
    if (this.webhookId !== id) return; // another webhook was chosen meanwhile
    this.render(jobs);
    if (jobs.some((job) => job.state === 'RUNNING' || job.open > 0)) {
      this.timer = setTimeout(() => this.load(), POLL_MS);
    }
  }

  render(jobs) {
    $('recoveries').hidden = jobs.length === 0;
    $('recoveries-list').replaceChildren(...jobs.map((job) => this.row(job)));
  }

  row(job) {
    const window = `${fullTime(job.since)} → ${job.until ? fullTime(job.until) : 'now'}`;
    const progress = job.total
      ? h('progress', { max: job.total, value: job.queued, 'aria-label': `${job.queued} of ${job.total} queued` })
      : null;
    const counts = `${job.queued} of ${job.total} queued · ${job.succeeded} delivered · ` +
      `${job.failed} failed again · ${job.open} open`;
    return h('li', { class: 'recovery', 'data-testid': 'recovery-job', 'data-state': job.state },
      h('div', { class: 'line' },
        badge(job.state, job.state === 'COMPLETED' ? 'succeeded' : job.state.toLowerCase()),
        h('span', { class: 'muted small' }, `${job.statuses.join(', ').toLowerCase()} · ${window}`),
        job.state === 'RUNNING' && this.isAdmin()
          ? h('button', {
            type: 'button', class: 'secondary small-button',
            'aria-label': `Cancel the recovery ${job.id}`,
            onclick: (event) => this.cancel(job, event.currentTarget),
          }, 'Cancel')
          : null),
      progress,
      h('div', { class: 'small', 'data-testid': 'recovery-counts' }, counts));
  }
}

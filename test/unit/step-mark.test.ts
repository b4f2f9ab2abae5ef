/**
 * stepMark: the mark in an SSM command's comment that ties the command to one step of one
 * activity, so that a retried attempt finds the command it already sent.
 */
import { stepMark, type RemoteInput } from '../../src/activities/remote';

const run = { workflowId: 'migrate-video-message-app', runId: '0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0', activityId: '7' };
const step = { label: 'setup', instanceId: 'i-0123456789abcdef0' };

describe('stepMark', () => {
  // A retry may run on a newer worker than the attempt that sent the command: the mark must not
  // change between versions. It is `step-` and the first 16 hex digits of the SHA-256 of the
  // workflow id, run id, activity id, label and instance id, one per line.
  it('has a fixed value for given inputs', () => {
    expect(stepMark(run, step)).toBe('step-dbc2e0f45cb1cb9d');
  });

  it('is one space-free word of 21 characters, so it survives the comment being split on spaces and cut', () => {
    const mark = stepMark(run, step);
    expect(mark).toMatch(/^step-[0-9a-f]{16}$/);
    expect(mark).toHaveLength(21);
    const spaced = stepMark(
      { workflowId: 'a b', runId: 'c d', activityId: 'e f' },
      { label: 'check open voice', instanceId: 'i-0123456789abcdef0' },
    );
    expect(spaced).toMatch(/^step-[0-9a-f]{16}$/);
  });

  it('is the same on every attempt of the step, whatever else the input holds', () => {
    const first: RemoteInput = { region: 'ap-northeast-1', ...step, commands: ['docker --version'] };
    const retry: RemoteInput = {
      region: 'us-east-1',
      ...step,
      commands: ['docker --version', 'nvidia-smi'],
      timeoutSeconds: 60,
      agentWaitSeconds: 30,
      resume: false,
    };
    expect(stepMark({ ...run }, first)).toBe(stepMark({ ...run }, retry));
    expect(stepMark({ ...run }, retry)).toBe('step-dbc2e0f45cb1cb9d');
  });

  it('differs for another workflow, run, activity, step label or instance', () => {
    const marks = new Set([
      stepMark(run, step),
      stepMark({ ...run, workflowId: 'migrate-other-app' }, step),
      stepMark({ ...run, runId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' }, step),
      stepMark({ ...run, activityId: '8' }, step),
      stepMark(run, { ...step, label: 'check openvoice' }),
      stepMark(run, { ...step, instanceId: 'i-0fedcba9876543210' }),
    ]);
    expect(marks.size).toBe(6);
  });

  it('keeps the boundaries between its parts', () => {
    const marks = new Set([
      stepMark({ workflowId: 'wf-1', runId: 'r', activityId: '2' }, step),
      stepMark({ workflowId: 'wf-', runId: '1r', activityId: '2' }, step),
      stepMark({ workflowId: 'wf-1', runId: 'r2', activityId: '' }, step),
      stepMark(
        { workflowId: 'wf-1', runId: 'r', activityId: '2' },
        { label: 'setupi', instanceId: '-0123456789abcdef0' },
      ),
    ]);
    expect(marks.size).toBe(4);
  });
});

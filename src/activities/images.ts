import { CreateImageCommand, DescribeImagesCommand, waitUntilImageAvailable, type Image } from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import type { Plan } from '../plan/schema';
import { TAG_PLAN, TAG_STEP, TAG_WORKFLOW } from '../shared/constants';
import { resourceTags } from './instances';
import { attempt, withHeartbeat } from './util';

export interface ImageResult {
  imageId: string;
  name: string;
  state: string;
  sourceInstanceId: string;
  reused: boolean;
  attempt: number;
}

export function createImageActivities(clients: AwsClients) {
  async function findImage(plan: Plan, workflowId: string, step: string, sourceInstanceId: string): Promise<Image | undefined> {
    const out = await aws('look for an image an earlier attempt made', () =>
      clients.ec2(plan.region).send(
        new DescribeImagesCommand({
          Owners: ['self'],
          Filters: [
            { Name: `tag:${TAG_PLAN}`, Values: [plan.name] },
            { Name: `tag:${TAG_WORKFLOW}`, Values: [workflowId] },
            { Name: `tag:${TAG_STEP}`, Values: [step] },
          ],
        }),
      ),
    );
    return (out.Images ?? []).find((i) => i.State !== 'failed' && i.State !== 'deregistered' && (i.Tags ?? []).some((t) => t.Key === 'source-instance' && t.Value === sourceInstanceId));
  }

  /**
   * Makes an AMI of an instance (a `backup` of the old one once it is stopped, or the `golden`
   * image of the new one for fast Spot replacement), or finds the one an earlier attempt made;
   * waits until it is available. NoReboot: the new instance keeps serving while it is taken
   * (the workflow runs `sync` on it first); the stopped one needs no reboot.
   */
  async function createImage(input: { plan: Plan; workflowId: string; step: 'backup' | 'golden'; instanceId: string; stamp: string }): Promise<ImageResult> {
    const { plan, workflowId, step, instanceId } = input;
    const ec2 = clients.ec2(plan.region);
    let image = await findImage(plan, workflowId, step, instanceId);
    // A retry after a failed image gets a name of its own: AWS may keep the failed one's name.
    const n = attempt();
    const name = `${plan.name}-${step}-${instanceId}-${input.stamp}${n > 1 ? `-a${n}` : ''}`.replace(/[^A-Za-z0-9()[\]./\-'@_]/g, '-').slice(0, 128);
    const reused = Boolean(image);
    if (!image) {
      const tags = [...resourceTags(plan, workflowId, step), { Key: 'source-instance', Value: instanceId }];
      const out = await aws(`make the ${step} image of ${instanceId}`, () =>
        ec2.send(
          new CreateImageCommand({
            InstanceId: instanceId,
            Name: name,
            Description: `${step} image of ${instanceId} made by ec2-gpu-migration for ${plan.name}`,
            NoReboot: true,
            TagSpecifications: [{ ResourceType: 'image', Tags: tags }],
          }),
        ),
      );
      if (!out.ImageId) throw ApplicationFailure.create({ type: 'CreateImageFailed', message: 'CreateImage returned no image id' });
      image = { ImageId: out.ImageId, Name: name, State: 'pending' };
    }
    const imageId = image.ImageId as string;
    await withHeartbeat(
      () =>
        aws(`wait for image ${imageId}`, () =>
          waitUntilImageAvailable({ client: ec2, maxWaitTime: 3600, minDelay: 5, maxDelay: 30, abortSignal: Context.current().cancellationSignal }, { ImageIds: [imageId] }),
        ),
      () => ({ imageId }),
    );
    return { imageId, name: image.Name ?? name, state: 'available', sourceInstanceId: instanceId, reused, attempt: attempt() };
  }

  return { createImage };
}

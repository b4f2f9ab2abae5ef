import {
  CreateImageCommand,
  DeleteSnapshotCommand,
  DeregisterImageCommand,
  DescribeImagesCommand,
  DescribeSnapshotsCommand,
  waitUntilImageAvailable,
  type CreateImageCommandInput,
  type Image,
} from '@aws-sdk/client-ec2';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { aws } from '../aws/call';
import type { AwsClients } from '../aws/clients';
import type { PlanRef } from '../shared/plan-slices';
import { TAG_PLAN, TAG_STEP, TAG_WORKFLOW } from '../shared/constants';
import { resourceTags } from '../aws/ec2';
import { attempt, withHeartbeat } from './util';

export interface ImageResult {
  imageId: string;
  name: string;
  state: string;
  sourceInstanceId: string;
  reused: boolean;
  attempt: number;
}

/**
 * The CreateImage request of a step: the image and its snapshots tagged alike (the snapshots
 * are what is billed, and what `cleanup` finds again). Preflight DryRuns the same request.
 */
export function imageRequest(
  plan: PlanRef,
  workflowId: string,
  step: string,
  instanceId: string,
  name: string,
): CreateImageCommandInput {
  const tags = [...resourceTags(plan.name, workflowId, step), { Key: 'source-instance', Value: instanceId }];
  return {
    InstanceId: instanceId,
    Name: name,
    Description: `${step} image of ${instanceId} made by ec2-gpu-migration for ${plan.name}`,
    NoReboot: true,
    TagSpecifications: [
      { ResourceType: 'image', Tags: tags },
      { ResourceType: 'snapshot', Tags: tags },
    ],
  };
}

/** The filters that find what the tool made for one step of a plan. */
const taggedFor = (plan: PlanRef, step: string) => [
  { Name: `tag:${TAG_PLAN}`, Values: [plan.name] },
  { Name: `tag:${TAG_STEP}`, Values: [step] },
];

export function createImageActivities(clients: AwsClients) {
  async function findImage(
    plan: PlanRef,
    workflowId: string,
    step: string,
    sourceInstanceId: string,
  ): Promise<Image | undefined> {
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
    return (out.Images ?? []).find(
      (i) =>
        i.State !== 'failed' &&
        i.State !== 'deregistered' &&
        (i.Tags ?? []).some((t) => t.Key === 'source-instance' && t.Value === sourceInstanceId),
    );
  }

  /**
   * Makes an AMI of an instance (a `backup` of the old one once it is stopped, or the `golden`
   * image of the new one for fast Spot replacement), or finds the one an earlier attempt made;
   * waits until it is available. NoReboot: the new instance keeps serving while it is taken
   * (the workflow runs `sync` on it first); the stopped one needs no reboot.
   */
  async function createImage(input: {
    plan: PlanRef;
    workflowId: string;
    step: 'backup' | 'golden';
    instanceId: string;
    stamp: string;
  }): Promise<ImageResult> {
    const { plan, workflowId, step, instanceId } = input;
    const ec2 = clients.ec2(plan.region);
    // Alive from the first moment, however slow AWS answers: an attempt timed out while its
    // CreateImage is still on the way would let the next one, finding nothing yet, make a second image.
    let known: string | undefined;
    return withHeartbeat(
      async () => {
        let image = await findImage(plan, workflowId, step, instanceId);
        // A retry after a failed image gets a name of its own: AWS may keep the failed one's name.
        const n = attempt();
        const name = `${plan.name}-${step}-${instanceId}-${input.stamp}${n > 1 ? `-a${n}` : ''}`
          .replace(/[^A-Za-z0-9()[\]./\-'@_]/g, '-')
          .slice(0, 128);
        const reused = Boolean(image);
        if (!image) {
          const out = await aws(`make the ${step} image of ${instanceId}`, () =>
            ec2.send(new CreateImageCommand(imageRequest(plan, workflowId, step, instanceId, name))),
          );
          if (!out.ImageId)
            throw ApplicationFailure.create({ type: 'CreateImageFailed', message: 'CreateImage returned no image id' });
          image = { ImageId: out.ImageId, Name: name, State: 'pending' };
        }
        const imageId = (known = image.ImageId as string);
        await aws(`wait for image ${imageId}`, () =>
          waitUntilImageAvailable(
            {
              client: ec2,
              maxWaitTime: 3600,
              minDelay: 5,
              maxDelay: 30,
              abortSignal: Context.current().cancellationSignal,
            },
            { ImageIds: [imageId] },
          ),
        );
        return {
          imageId,
          name: image.Name ?? name,
          state: 'available' as const,
          sourceInstanceId: instanceId,
          reused,
          attempt: attempt(),
        };
      },
      () => (known ? { imageId: known } : { step, instanceId }),
    );
  }

  /** The plan's images of one step (`golden`, `backup`), newest first. */
  async function imagesOf(plan: PlanRef, step: string): Promise<Image[]> {
    const out = await aws(`list the ${step} images of ${plan.name}`, () =>
      clients.ec2(plan.region).send(
        new DescribeImagesCommand({
          Owners: ['self'],
          Filters: taggedFor(plan, step),
        }),
      ),
    );
    return (out.Images ?? []).sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''));
  }

  /** Snapshots tagged with the plan (and step) that no image of the account uses any more. */
  async function orphanSnapshots(plan: PlanRef, step: string, images: Image[]): Promise<string[]> {
    const used = new Set(
      images.flatMap((i) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId).filter(Boolean)),
    );
    const out = await aws(`list the ${step} snapshots of ${plan.name}`, () =>
      clients.ec2(plan.region).send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: taggedFor(plan, step),
        }),
      ),
    );
    return (out.Snapshots ?? []).map((x) => x.SnapshotId ?? '').filter((id) => id && !used.has(id));
  }

  /** Deregisters an image and deletes its snapshots (a deregistered image keeps them, billed). */
  async function deleteImage(region: string, image: Image): Promise<string[]> {
    const ec2 = clients.ec2(region);
    try {
      await aws(`deregister ${image.ImageId}`, () => ec2.send(new DeregisterImageCommand({ ImageId: image.ImageId })));
    } catch (err) {
      if (!(
        err instanceof ApplicationFailure &&
        (err.type === 'InvalidAMIID.NotFound' || err.type === 'InvalidAMIID.Unavailable')
      ))
        throw err;
    }
    const snapshots = (image.BlockDeviceMappings ?? [])
      .map((m) => m.Ebs?.SnapshotId)
      .filter((id): id is string => Boolean(id));
    for (const id of snapshots) await deleteSnapshot(region, id);
    return snapshots;
  }

  async function deleteSnapshot(region: string, snapshotId: string): Promise<void> {
    try {
      await aws(`delete snapshot ${snapshotId}`, () =>
        clients.ec2(region).send(new DeleteSnapshotCommand({ SnapshotId: snapshotId })),
      );
    } catch (err) {
      if (!(err instanceof ApplicationFailure && err.type === 'InvalidSnapshot.NotFound')) throw err;
    }
  }

  /**
   * Keeps the newest `keep` golden images of the plan (and always `inUse`); deregisters the
   * others and deletes their snapshots, and any golden snapshot no image uses any more (left by
   * a crash between the two). Idempotent.
   */
  async function pruneGoldenImages(input: {
    plan: PlanRef;
    keep: number;
    inUse?: string;
  }): Promise<{ kept: string[]; deregistered: string[]; snapshotsDeleted: string[] }> {
    const { plan } = input;
    const images = await imagesOf(plan, 'golden');
    const kept = images.filter((i, n) => n < input.keep || i.ImageId === input.inUse);
    const old = images.filter((i) => !kept.includes(i));
    const snapshotsDeleted: string[] = [];
    for (const image of old) snapshotsDeleted.push(...(await deleteImage(plan.region, image)));
    for (const id of await orphanSnapshots(plan, 'golden', kept)) {
      await deleteSnapshot(plan.region, id);
      snapshotsDeleted.push(id);
    }
    return { kept: kept.map((i) => i.ImageId ?? ''), deregistered: old.map((i) => i.ImageId ?? ''), snapshotsDeleted };
  }

  /**
   * The undo of a golden image made while the migration waited for approval (its instance was
   * lost, or the migration was rejected): deregisters what this run made for the step (only the
   * images of `sourceInstanceId` when given; never `keep`) and deletes their snapshots, and any
   * snapshot of the run's step no image uses (left by a crash between the two). An image still
   * pending is waited for first. Idempotent.
   */
  async function discardImages(input: {
    plan: PlanRef;
    workflowId: string;
    step: 'golden';
    sourceInstanceId?: string;
    keep?: string;
  }): Promise<{ deregistered: string[]; snapshotsDeleted: string[] }> {
    const { plan, workflowId, step, sourceInstanceId } = input;
    const ec2 = clients.ec2(plan.region);
    const filters = [
      ...taggedFor(plan, step),
      { Name: `tag:${TAG_WORKFLOW}`, Values: [workflowId] },
      ...(sourceInstanceId ? [{ Name: 'tag:source-instance', Values: [sourceInstanceId] }] : []),
    ];
    const listed = await aws(`list the ${step} images of ${workflowId}`, () =>
      ec2.send(new DescribeImagesCommand({ Owners: ['self'], Filters: filters })),
    );
    const images = listed.Images ?? [];
    const kept = images.filter((i) => i.ImageId === input.keep);
    const doomed = images.filter((i) => i.ImageId !== input.keep && i.State !== 'deregistered');
    const snapshotsDeleted: string[] = [];
    for (const image of doomed) {
      let found = image;
      if (image.State === 'pending') {
        // Its snapshots are known once it is available (or failed): wait, then discard all of it.
        await withHeartbeat(
          () =>
            waitUntilImageAvailable(
              {
                client: ec2,
                maxWaitTime: 3600,
                minDelay: 5,
                maxDelay: 30,
                abortSignal: Context.current().cancellationSignal,
              },
              { ImageIds: [image.ImageId as string] },
            ).catch(() => undefined),
          () => ({ imageId: image.ImageId }),
        );
        const again = await aws(`look at ${image.ImageId}`, () =>
          ec2.send(new DescribeImagesCommand({ ImageIds: [image.ImageId as string] })),
        ).catch(() => undefined);
        found = again?.Images?.[0] ?? image;
      }
      snapshotsDeleted.push(...(await deleteImage(plan.region, found)));
    }
    const snapshots = await aws(`list the ${step} snapshots of ${workflowId}`, () =>
      ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: filters })),
    );
    const used = new Set(kept.flatMap((i) => (i.BlockDeviceMappings ?? []).map((m) => m.Ebs?.SnapshotId)));
    for (const snap of snapshots.Snapshots ?? []) {
      const id = snap.SnapshotId;
      if (!id || used.has(id) || snapshotsDeleted.includes(id)) continue;
      await deleteSnapshot(plan.region, id);
      snapshotsDeleted.push(id);
    }
    return { deregistered: doomed.map((i) => i.ImageId ?? ''), snapshotsDeleted };
  }

  return { createImage, pruneGoldenImages, discardImages };
}

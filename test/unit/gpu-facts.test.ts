/**
 * parseGpuFacts: GPU name, memory, driver and CUDA version read from what GPU_FACTS_COMMAND
 * prints (nvidia-smi's CSV line per GPU, then the CUDA version line).
 */
import { GPU_FACTS_COMMAND, parseGpuFacts } from '../../src/activities/checks';
import type { GpuFacts } from '../../src/shared/checks';
import type { Figure } from '../../src/shared/migration';

const NOT_REPORTED: Figure = { value: null, source: 'not reported by the instance' };
const NOTHING: GpuFacts = { name: NOT_REPORTED, memory: NOT_REPORTED, driver: NOT_REPORTED, cuda: NOT_REPORTED };

const T4: GpuFacts = {
  name: { value: 'Tesla T4', source: 'measured' },
  memory: { value: 15360, unit: 'MiB', source: 'measured' },
  driver: { value: '535.104.05', source: 'measured' },
  cuda: { value: '12.2', source: 'measured' },
};

describe('GPU_FACTS_COMMAND', () => {
  it('asks for the CSV fields in the order the parser reads them, without a header line', () => {
    expect(GPU_FACTS_COMMAND).toContain('--query-gpu=name,memory.total,driver_version');
    expect(GPU_FACTS_COMMAND).toContain('--format=csv,noheader');
  });
});

describe('parseGpuFacts', () => {
  it('reads a g4dn Tesla T4', () => {
    expect(parseGpuFacts('Tesla T4, 15360 MiB, 535.104.05\nCUDA Version: 12.2\n')).toEqual(T4);
  });

  it('reads a g5 A10G, with CRLF line ends', () => {
    expect(parseGpuFacts('NVIDIA A10G, 23028 MiB, 550.54.15\r\nCUDA Version: 12.4\r\n')).toEqual({
      name: { value: 'NVIDIA A10G', source: 'measured' },
      memory: { value: 23028, unit: 'MiB', source: 'measured' },
      driver: { value: '550.54.15', source: 'measured' },
      cuda: { value: '12.4', source: 'measured' },
    });
  });

  it('finds the CUDA version in the nvidia-smi banner and before the CSV line', () => {
    const banner = '| NVIDIA-SMI 535.104.05             Driver Version: 535.104.05   CUDA Version: 12.2     |';
    expect(parseGpuFacts(`${banner}\nTesla T4, 15360 MiB, 535.104.05\n`)).toEqual(T4);
    expect(parseGpuFacts('CUDA Version: 12.2\nTesla T4, 15360 MiB, 535.104.05')).toEqual(T4);
  });

  it('accepts the memory without a space before MiB', () => {
    expect(parseGpuFacts('Tesla T4, 15360MiB, 535.104.05').memory).toEqual({
      value: 15360,
      unit: 'MiB',
      source: 'measured',
    });
  });

  it('reports no CUDA version when the output has no CUDA line', () => {
    expect(parseGpuFacts('Tesla T4, 15360 MiB, 535.104.05\n')).toEqual({ ...T4, cuda: NOT_REPORTED });
  });

  it('keeps the name and memory when the driver field is not a version', () => {
    expect(parseGpuFacts('Tesla T4, 15360 MiB, [N/A]\nCUDA Version: 12.2')).toEqual({ ...T4, driver: NOT_REPORTED });
    expect(parseGpuFacts('Tesla T4, 15360 MiB, 535').driver).toEqual(NOT_REPORTED);
  });

  it('takes the first GPU of several', () => {
    const four = Array.from({ length: 4 }, () => 'Tesla T4, 15360 MiB, 535.104.05').join('\n');
    expect(parseGpuFacts(`${four}\nCUDA Version: 12.2\n`)).toEqual(T4);
    const mixed = 'NVIDIA A10G, 23028 MiB, 550.54.15\nTesla T4, 15360 MiB, 535.104.05\n';
    expect(parseGpuFacts(mixed)).toMatchObject({
      name: { value: 'NVIDIA A10G' },
      memory: { value: 23028 },
      driver: { value: '550.54.15' },
    });
  });

  it('reports nothing for empty output', () => {
    expect(parseGpuFacts('')).toEqual(NOTHING);
    expect(parseGpuFacts('\n\n')).toEqual(NOTHING);
  });

  it('reports nothing on an instance without a GPU or driver', () => {
    const failed =
      "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.\n\n";
    expect(parseGpuFacts(failed)).toEqual(NOTHING);
    expect(parseGpuFacts('bash: line 1: nvidia-smi: command not found\n')).toEqual(NOTHING);
    expect(parseGpuFacts('No devices were found\n')).toEqual(NOTHING);
  });

  it('reports nothing for garbage, also when it has commas', () => {
    for (const garbage of [
      'a, b, c',
      ', 15360 MiB, 535.104.05',
      'Tesla T4, lots MiB, 535.104.05',
      'Tesla T4, 16 GiB, 535.104.05',
      'Tesla T4, 15360 MiB',
      '\u0000\u0001,,,\u00ff',
      'CUDA Version: twelve',
    ])
      expect({ garbage, facts: parseGpuFacts(garbage) }).toEqual({ garbage, facts: NOTHING });
  });

  it('skips garbage lines before the GPU line', () => {
    expect(
      parseGpuFacts('warning: something, else, here\nTesla T4, 15360 MiB, 535.104.05\nCUDA Version: 12.2'),
    ).toEqual(T4);
  });
});

// The AudioWorkletGlobalScope that audio-output.worklet.js runs in (TypeScript's DOM library
// does not describe it).
declare const sampleRate: number;
interface AudioWorkletProcessor {
  readonly port: MessagePort;
}
declare var AudioWorkletProcessor: {
  prototype: AudioWorkletProcessor;
  new (options?: AudioWorkletNodeOptions): AudioWorkletProcessor;
};
declare function registerProcessor(
  name: string,
  processor: new (options: any) => AudioWorkletProcessor,
): void;

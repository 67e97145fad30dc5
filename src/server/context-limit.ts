/**
 * The one message for a request whose prompt leaves no room for the new tokens it asks for, used by the
 * server, the CLI and the engines alike. It counts what the model reads (image query tokens, BOS and the
 * prompt text, as `usage.prompt_tokens` does) and says the largest token limit that fits.
 */

/**
 * The message, or null when `promptTokens + maxNewTokens` fits the context. `maxName` names the limit as the
 * caller's users set it (`max_tokens`, `--max-new-tokens`); `defaulted` says they left it at its default.
 */
export function contextOverflow(promptTokens: number, maxNewTokens: number, context: number, maxName: string, defaulted = false): string | null {
  if (promptTokens + maxNewTokens <= context) return null;
  const room = context - promptTokens;
  const fix = room >= 1 ? `${maxName} can be at most ${room} for this prompt` : 'the prompt alone fills it, so it must be shorter';
  return (
    `the prompt is ${promptTokens} tokens (image tokens included) and ${maxName} is ${maxNewTokens}${defaulted ? ' (the default)' : ''}: ` +
    `${promptTokens + maxNewTokens} tokens, more than the model's context of ${context}; ${fix}`
  );
}

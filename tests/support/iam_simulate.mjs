// IAM's decision on requests, by @cloud-copilot/iam-simulate (pinned in package-lock.json, installed by make install).
//
// One process serves a whole test session (tests/support/iam_simulator.py starts it): each line on standard input
// is a JSON object, each answer one line on standard output, in order.
//   {"define": "<key>", "policies": [{"name", "policy"}]}            remembers a principal's identity policies
//   {"id", "policies": "<key>", "request": {action, resource, context, principal}, "resourcePolicy"?: {...}}
// An answer: {"id", "result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error", "allowedBy": [sid...],
// "error"?: "...", "ignoredContextKeys": [...], "resourceType"}. The simulator carries AWS's own action,
// resource-type and condition-key data (iam-data), so a request it cannot place is an error, never a silent allow.
import { createInterface } from 'node:readline'
import { anonymousPrincipal, runSimulation } from '@cloud-copilot/iam-simulate'

const ACCOUNT_OF_ARN = /^arn:[^:]+:[^:]*:[^:]*:(\d{12}):/
const defined = new Map()

async function decide(message) {
  const { request } = message
  // Resources without an account in their ARN ("*", images, snapshots) are the caller's account's.
  const resourceAccount =
    (ACCOUNT_OF_ARN.exec(request.resource) || [])[1] || (ACCOUNT_OF_ARN.exec(request.principal) || [])[1]
  const simulation = {
    identityPolicies: message.policies ? defined.get(message.policies) : [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: message.resourcePolicy,
    request: {
      action: request.action,
      principal: request.principal === '*' ? anonymousPrincipal : request.principal,
      resource: { resource: request.resource, accountId: resourceAccount },
      contextVariables: request.context || {}
    }
  }
  const answer = await runSimulation(simulation, {})
  if (answer.resultType === 'error') {
    return { result: 'Error', error: JSON.stringify(answer.errors) }
  }
  const results = answer.resultType === 'single' ? [answer.result] : answer.results
  const allowedBy = []
  for (const result of results) {
    const analysis = result.analysis || {}
    for (const found of [analysis.identityAnalysis, analysis.resourceAnalysis]) {
      for (const statement of (found && found.allowStatements) || []) {
        allowedBy.push(statement.explain.identifier)
      }
    }
  }
  return {
    result: answer.overallResult,
    allowedBy,
    ignoredContextKeys: results.flatMap((result) => result.ignoredContextKeys || []),
    resourceType: results[0] && results[0].resourceType
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  const message = JSON.parse(line)
  if (message.define) {
    defined.set(message.define, message.policies)
    process.stdout.write(JSON.stringify({ defined: message.define }) + '\n')
    continue
  }
  let answer
  try {
    answer = await decide(message)
  } catch (error) {
    answer = { result: 'Error', error: String(error && error.stack ? error.stack : error) }
  }
  process.stdout.write(JSON.stringify({ id: message.id, ...answer }) + '\n')
}
